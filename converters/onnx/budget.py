"""Keep the most quantization-sensitive layers in float until an accuracy budget holds.

``--max-accuracy-drop 0.5`` means: the int8 model may disagree with fp32 on at most 0.5% of the
budget images (the shapes ``val`` split or the user's images: never the calibration images, and
not the test images the final validation uses). Sensitivity is measured per node in isolation:
the fp32 model's own activations at each quantizable MatMul/Attention input are fake-quantized
together with its weights in numpy, and the relative output error ranks the nodes. Then the
fewest top-ranked nodes that bring the measured drop within budget stay in float.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from vitedge.metrics import top1_agreement


@dataclass(frozen=True)
class BudgetResult:
    """The float nodes chosen, and the drop measured with them."""

    float_nodes: tuple[str, ...]
    drop_points: float
    drop_all_quantized: float
    evaluations: int
    sensitivity: tuple[tuple[str, float], ...]


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


def _fake_quant_weights(weight: np.ndarray, reduce_range: bool) -> np.ndarray:
    levels = 63.0 if reduce_range else 127.0
    scale = np.maximum(np.abs(weight).max(axis=0, keepdims=True), 1e-12) / levels
    return np.round(weight / scale) * scale


def _fake_quant_activations(values: np.ndarray) -> np.ndarray:
    low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    scale = max(high - low, 1e-12) / 255.0
    zero = np.round(-low / scale)
    return (np.clip(np.round(values / scale) + zero, 0, 255) - zero) * scale


def node_sensitivity(
    fp32_path: Path, nodes: list[str], inputs: np.ndarray, *, reduce_range: bool = False
) -> dict[str, float]:
    """Relative output error of each node quantized alone, on the fp32 model's own activations."""
    model = onnx.load(str(fp32_path))
    by_name = {node.name: node for node in model.graph.node}
    weights = {init.name: init for init in model.graph.initializer}
    activation_names = sorted({by_name[name].input[0] for name in nodes})
    existing = {output.name for output in model.graph.output}
    for name in activation_names:
        if name not in existing:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    probe = fp32_path.with_name(fp32_path.stem + ".probe.onnx")
    onnx.save_model(model, str(probe))
    try:
        session = _session(probe)
        input_name = session.get_inputs()[0].name
        activations = dict(zip(activation_names, session.run(activation_names, {input_name: inputs})))
    finally:
        probe.unlink(missing_ok=True)
    errors = {}
    for name in nodes:
        node = by_name[name]
        weight = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)
        x = activations[node.input[0]].reshape(-1, weight.shape[0])
        reference = x @ weight
        candidate = _fake_quant_activations(x) @ _fake_quant_weights(weight, reduce_range)
        errors[name] = float(np.linalg.norm(candidate - reference) / max(np.linalg.norm(reference), 1e-12))
    return errors


def fit_budget(
    quantize_with: Callable[[tuple[str, ...]], Path],
    fp32_logits: np.ndarray,
    budget_inputs: np.ndarray,
    ranked: list[tuple[str, float]],
    max_drop_points: float,
) -> BudgetResult:
    """Find the fewest most-sensitive nodes to keep in float so the drop is within budget.

    ``quantize_with(float_nodes)`` writes a quantized model and returns its path. The search grows
    the float set 1, 2, 4, … then bisects (the drop falls as more nodes stay float).
    """
    evaluations = 0

    def drop(count: int) -> float:
        nonlocal evaluations
        evaluations += 1
        path = quantize_with(tuple(name for name, _ in ranked[:count]))
        return 100.0 * (1.0 - top1_agreement(fp32_logits, run_logits(path, budget_inputs)))

    measured = {0: drop(0)}
    if measured[0] <= max_drop_points or not ranked:
        best = 0
    else:
        low, high = 0, 1
        while high < len(ranked):
            measured[high] = drop(high)
            if measured[high] <= max_drop_points:
                break
            low, high = high, min(2 * high, len(ranked))
        else:
            measured[high] = 0.0  # everything in float: no drop by construction
        while high - low > 1:
            middle = (low + high) // 2
            measured[middle] = drop(middle)
            low, high = (low, middle) if measured[middle] <= max_drop_points else (middle, high)
        best = high
        quantize_with(tuple(name for name, _ in ranked[:best]))  # leave the chosen model written
    return BudgetResult(
        float_nodes=tuple(name for name, _ in ranked[:best]),
        drop_points=measured[best],
        drop_all_quantized=measured[0],
        evaluations=evaluations,
        sensitivity=tuple(ranked[: min(len(ranked), 10)]),
    )
