"""Core ML: export with coremltools, weight compression, and validation by simulation off macOS.

``export`` is the registry's exporter; ``quantize`` holds the compression recipes (int8/int4 weights,
palettization); ``validate`` is the registry's validator (it simulates the compressed program in torch
where Core ML cannot run); ``checks``, ``mlpackage``, ``simulate``, ``image``, ``batchnorm`` and ``compat`` support them.
"""
