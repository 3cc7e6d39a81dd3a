"""The ONNX side of ``--max-accuracy-drop`` (:mod:`vitedge.converters.accuracy_budget` holds the search
and the per-layer sensitivity every format shares): run a quantized graph's logits in onnxruntime and
measure its drop against the fp32 graph's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from vitedge.converters.accuracy_budget import BudgetResult, search_budget
from vitedge.metrics import top1_agreement


def _session(path: Path, threads: int | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_logits(path: Path, inputs: np.ndarray, batch_size: int = 8) -> np.ndarray:
    session = _session(path)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(["logits"], {name: inputs[i : i + batch_size]})[0] for i in range(0, len(inputs), batch_size)])


def fit_budget(
    quantize_with: Callable[[tuple[str, ...]], Path],
    fp32_logits: np.ndarray,
    budget_inputs: np.ndarray,
    ranked: Sequence[tuple[str, float]],
    max_drop_points: float,
) -> BudgetResult:
    """Find the fewest most-sensitive entries of ``ranked`` to keep in float so the drop is within budget.

    ``quantize_with(float_names)`` writes a quantized graph and returns its path; the drop is measured
    on ``budget_inputs`` against ``fp32_logits``.
    """
    def drop_with(float_names: tuple[str, ...]) -> float:
        logits = run_logits(quantize_with(float_names), budget_inputs)
        return 100.0 * (1.0 - top1_agreement(fp32_logits, logits))

    return search_budget(drop_with, ranked, max_drop_points)
