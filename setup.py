"""Package discovery for the one distribution: every sub-package of the four folders ships.

``vitedge/`` is the face; ``converters/``, ``runtime/`` and ``benchmarks/`` are top-level folders (the
user's) that import as ``vitedge.converters``, ``vitedge.runtime`` and ``vitedge.benchmarks``. Everything
else is in pyproject.toml.
"""

from setuptools import find_packages, setup

LAYER_FOLDERS = ("converters", "runtime", "benchmarks")

package_dir = {"vitedge": "vitedge"}
packages = find_packages(include=["vitedge", "vitedge.*"])
for folder in LAYER_FOLDERS:
    package_dir[f"vitedge.{folder}"] = folder
    packages += [f"vitedge.{name}" for name in find_packages(include=[folder, f"{folder}.*"])]

setup(package_dir=package_dir, packages=packages)
