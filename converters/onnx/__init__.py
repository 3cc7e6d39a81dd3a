"""ONNX: export (torch.onnx, fused attention), quantization (onnxruntime: fp16, int8, int4) and the accuracy budget.

The inner shape every format package shares: ``export`` (the registry's exporter), ``quantize`` (the
precisions' recipes) and format-specific checks (here ``budget``: per-node sensitivity for
``--max-accuracy-drop``).
"""
