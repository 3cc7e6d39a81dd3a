"""ONNX: export (torch.onnx, fused attention), quantization (onnxruntime: fp16, int8, int4) and the accuracy budget.

The inner shape every format package shares: ``export`` (the registry's exporter), ``quantize`` (the
precisions' recipes) and format-specific pieces (here ``budget``: the drop measured in onnxruntime for
``--max-accuracy-drop``; ``diagnose``: the ``intermediates`` hook of ``vitedge diagnose``).
"""
