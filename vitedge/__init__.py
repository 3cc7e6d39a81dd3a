"""vitedge: Vision Transformer image classifiers on edge devices.

The torch-free runtime lives in :mod:`vitedge.runtime`, the torch side (export and quantization per
format, training) in :mod:`vitedge.converters`, the benchmark harness and the published studies in
:mod:`vitedge.benchmarks`, and the torch-free data every layer shares (the built-in shapes dataset,
ImageFolder reading) in :mod:`vitedge.data`.
"""

from vitedge._version import __version__

__all__ = ["__version__"]
