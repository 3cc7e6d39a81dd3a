"""vitedge: Vision Transformer image classifiers on edge devices.

The torch-free runtime lives in :mod:`vitedge.runtime`, the torch side (export, quantization,
training) in :mod:`vitedge.converters`, benchmarks and datasets in :mod:`vitedge.benchmarks`.
"""

from vitedge._version import __version__

__all__ = ["__version__"]
