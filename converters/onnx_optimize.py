"""onnxruntime's transformer fusions on an exported ViT graph: SkipLayerNorm and BiasGelu.

Attention comes fused from the export itself (:mod:`vitedge.converters.onnx_attention`); the
optimizer adds the LayerNorm+residual and bias+GELU fusions and removes export leftovers
(Identity, shape arithmetic). Whether the result is faster is measured, not assumed
(``benchmarks/onnx_precisions.py``).
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
from pathlib import Path

FUSED_OPS = ("Attention", "SkipLayerNormalization", "BiasGelu", "FastGelu", "Gelu")


def optimize_graph(path: Path) -> dict[str, int]:
    """Apply the fusions in place; returns how many fused ops the graph now has."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("vit")
    options.enable_attention = False  # already fused at export; the ViT pattern is not recognised anyway
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        optimized = optimize_model(str(path), model_type="vit", num_heads=0, hidden_size=0, opt_level=0,
                                   optimization_options=options)
        optimized.save_model_to_file(str(path))
    counts = collections.Counter(node.op_type for node in optimized.model.graph.node)
    return {op: counts[op] for op in FUSED_OPS if counts[op]}
