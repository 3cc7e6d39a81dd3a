"""``--max-accuracy-drop``: keep the most quantization-sensitive layers in float until an accuracy budget holds.

The same measurement for every format: :func:`layer_sensitivity` ranks the model's Linear layers in
torch, each quantized alone (its fp32 input activations fake-quantized per tensor to uint8, its weights
per output channel to int8, as the int8 recipes do) by the relative error of its output; the layers
are named as ``vitedge diagnose`` prints them. :func:`search_budget` then keeps the fewest top-ranked
layers in float that bring the measured drop within budget, each format quantizing (with those
layers left out, as ``--keep-float`` does) and measuring the drop in its own runtime.

``--max-accuracy-drop 0.5`` means: the int8 model may disagree with fp32 on at most 0.5% of the budget
images (the shapes ``val`` split or the user's images: never the calibration images, and not the test
images the final validation uses).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from vitedge.converters.calibration import BUILTIN, load_calibration
from vitedge.converters.export_types import ExportOptions
from vitedge.converters.loading import SourceModel
from vitedge.errors import UsageError
from vitedge.runtime.preprocess_spec import PreprocessSpec

#: Images the drop is measured on, and the first few of them the sensitivity is measured on.
BUDGET_SAMPLES = 64
SENSITIVITY_SAMPLES = 8


def budget_inputs(spec: PreprocessSpec, options: ExportOptions, samples: int = BUDGET_SAMPLES) -> np.ndarray:
    """The built-in ``val`` split, or the user's calibration folder minus its calibration images
    (held out from calibration, and from the final validation), preprocessed as ``spec`` says."""
    split = "val" if options.calibration == BUILTIN else "held-out"
    return load_calibration(spec, options.calibration, samples, split=split).inputs


@dataclass(frozen=True)
class BudgetResult:
    """The layers (or nodes) kept in float, and the drop measured with them."""

    float_nodes: tuple[str, ...]
    drop_points: float
    drop_all_quantized: float
    evaluations: int
    sensitivity: tuple[tuple[str, float], ...]


def check_budget(source: SourceModel, precision: str, precisions: Sequence[str]) -> None:
    """Refuse a budget the format cannot meet meaningfully (before any slow work)."""
    if precision not in precisions:
        raise UsageError(f"--max-accuracy-drop applies to int8 precisions ({', '.join(precisions)}), not {precision}")
    if source.info.weights == "random-init":
        raise UsageError(
            "--max-accuracy-drop needs a trained model: a random-init model's top-1 has no meaning",
            hint="drop the option for presets",
        )


def _fake_quant_weight(weight: torch.Tensor, reduce_range: bool) -> torch.Tensor:
    levels = 63.0 if reduce_range else 127.0
    scale = weight.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / levels
    return torch.round(weight / scale) * scale


def _fake_quant_activations(values: torch.Tensor) -> torch.Tensor:
    low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    scale = max(high - low, 1e-12) / 255.0
    zero = round(-low / scale)
    return (torch.clamp(torch.round(values / scale) + zero, 0, 255) - zero) * scale


def layer_sensitivity(source: SourceModel, inputs: np.ndarray, layers: Sequence[str], *,
                      reduce_range: bool = False, batch_size: int = 8) -> dict[str, float]:
    """Relative output error of each Linear layer of ``layers`` quantized alone, on the fp32 model's own activations."""
    model = source.model
    squared = {name: [0.0, 0.0] for name in layers}

    def measure(name: str, module: nn.Linear):
        def hook(_module, args, _output):
            x = args[0].reshape(-1, module.in_features).float()
            weight = module.weight.float()
            reference = x @ weight.T
            candidate = _fake_quant_activations(x) @ _fake_quant_weight(weight, reduce_range).T
            squared[name][0] += float(((candidate - reference) ** 2).sum())
            squared[name][1] += float((reference**2).sum())
        return hook

    handles = [model.get_submodule(name).register_forward_hook(measure(name, model.get_submodule(name)))
               for name in layers if isinstance(model.get_submodule(name), nn.Linear)]
    wrapper = source.two_outputs()
    try:
        with torch.inference_mode():
            for start in range(0, len(inputs), batch_size):
                wrapper(torch.from_numpy(inputs[start : start + batch_size]))
    finally:
        for handle in handles:
            handle.remove()
    return {name: (error / max(total, 1e-24)) ** 0.5 for name, (error, total) in squared.items() if total}


def search_budget(drop_with: Callable[[tuple[str, ...]], float], ranked: Sequence[tuple[str, float]],
                  max_drop_points: float) -> BudgetResult:
    """Find the fewest most-sensitive entries of ``ranked`` to keep in float so the drop is within budget.

    ``drop_with(float_names)`` quantizes with those left in float and returns the measured drop in
    points. The search grows the float set 1, 2, 4, … then bisects (the drop falls as more stay
    float); the last call is with the chosen set, so its model is the one left written.
    """
    evaluations = 0

    def drop(count: int) -> float:
        nonlocal evaluations
        evaluations += 1
        return drop_with(tuple(name for name, _ in ranked[:count]))

    measured = {0: drop(0)}
    best = 0
    if measured[0] > max_drop_points and ranked:
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
        drop_with(tuple(name for name, _ in ranked[:best]))  # leave the chosen model written
    return BudgetResult(
        float_nodes=tuple(name for name, _ in ranked[:best]),
        drop_points=measured[best],
        drop_all_quantized=measured[0],
        evaluations=evaluations,
        sensitivity=tuple(ranked[: min(len(ranked), 10)]),
    )


def budget_record(result: BudgetResult, max_drop_points: float, images: int) -> dict[str, Any]:
    """What the manifest's recipe records about the budget."""
    return {
        "max_drop_points": max_drop_points,
        "images": images,
        "drop_points": round(result.drop_points, 3),
        "drop_points_all_quantized": round(result.drop_all_quantized, 3),
        "evaluations": result.evaluations,
        "float_layers": list(result.float_nodes),
        "most_sensitive": [{"layer": name, "relative_error": round(error, 5)} for name, error in result.sensitivity],
    }
