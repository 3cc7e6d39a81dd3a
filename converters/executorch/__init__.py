"""ExecuTorch: torch.export → XNNPACK quantizer (PT2E) → XNNPACK delegation → ``model.pte``.

The inner shape every format package shares: ``export`` (the registry's exporter), ``quantize`` (the
precisions' recipes) and format-specific checks: ``attention`` (the attention rewrite that keeps every
matmul on XNNPACK) and ``delegation`` (what XNNPACK took, what it left to portable kernels).
"""
