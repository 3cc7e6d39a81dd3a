"""onnxruntime's offline transformer fusions (SkipLayerNorm, BiasGelu): measured, not used by default.

onnxruntime's transformer optimizer fuses LayerNorm+residual into ``SkipLayerNormalization`` and
bias+GELU into ``BiasGelu`` in ViT graphs (it never fuses ViT's attention: that comes fused from the
export itself, :mod:`vitedge.converters.onnx.attention`). On the x86 CPUs measured here the fused
graph ran slower, in fp32 and even more so after int8 quantization: onnxruntime's CPU
``SkipLayerNormalization`` kernel took ~6x the time of the plain ``LayerNormalization`` it replaces
(per-op profile in ``benchmarks/results/onnx_exporter.md``), and onnxruntime already applies its own
safe fusions (BiasGelu, FusedMatMul, MatMulIntegerToFloat, …) when a session loads the graph. So
vitedge's graphs skip this pass; it stays here so the benchmark can keep re-measuring the choice
(``python -m vitedge.benchmarks.studies.exporter_choice``).
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
from pathlib import Path

FUSED_OPS = ("Attention", "SkipLayerNormalization", "BiasGelu", "FastGelu", "Gelu")


def transformer_fusions(path: Path) -> dict[str, int]:
    """Apply onnxruntime's SkipLayerNorm/BiasGelu fusions in place; returns the fused ops the graph now has."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("vit")
    options.enable_attention = False  # fused at export; the optimizer does not recognise ViT attention anyway
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        optimized = optimize_model(str(path), model_type="vit", num_heads=0, hidden_size=0, opt_level=0,
                                   optimization_options=options)
        optimized.save_model_to_file(str(path))
    counts = collections.Counter(node.op_type for node in optimized.model.graph.node)
    return {op: counts[op] for op in FUSED_OPS if counts[op]}
