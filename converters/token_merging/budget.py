"""``--token-merging auto --max-accuracy-drop POINTS``: the largest R whose top-1 drop stays within the budget.

The drop means what it means for the int8 budget (:mod:`vitedge.converters.accuracy_budget`): the points
of top-1 agreement the token-merged torch fp32 model loses against the unmerged one, on the budget
images (the built-in ``val`` split, or the user's calibration folder minus its calibration images:
never the test images the final validation uses). Measured in torch, so it is the cost of merging
alone; the export's own error is the validation's business. R is tried from the largest down, and
the first within budget wins: the largest R that fits, even where the drop is not monotonic in R.
"""

from __future__ import annotations

from typing import Any

from vitedge.converters.accuracy_budget import BUDGET_SAMPLES, budget_inputs
from vitedge.converters.export_types import ExportOptions
from vitedge.converters.loading import SourceModel
from vitedge.converters.token_merging.model import model_tokens, plan_for, token_merged_source
from vitedge.converters.token_merging.plan import TokenMergingPlan, max_r
from vitedge.converters.validate import torch_outputs
from vitedge.errors import UsageError
from vitedge.metrics import top1_agreement


def choose_r(source: SourceModel, options: ExportOptions,
             samples: int = BUDGET_SAMPLES) -> tuple[TokenMergingPlan, dict[str, Any]]:
    """The plan of the largest R within ``options.max_accuracy_drop``, and the budget record for the manifest.

    Raises:
        UsageError: random-init weights (their top-1 means nothing), or a family without token merging.
    """
    if source.info.weights == "random-init":
        raise UsageError("--token-merging auto needs a trained model: a random-init model's top-1 has no meaning",
                         hint="pass a number R for presets (latency work)")
    protected = plan_for(source, 0).protected  # a family without token merging fails here, before any measurement
    largest = max_r(*model_tokens(source), protected)
    inputs = budget_inputs(source.preprocess, options, samples)
    reference = torch_outputs(source, inputs)["logits"]
    drops: dict[int, float] = {}
    chosen = 0
    for r in range(largest, 0, -1):
        merged = torch_outputs(token_merged_source(source, plan_for(source, r)), inputs)["logits"]
        drops[r] = round(100 * (1 - top1_agreement(reference, merged)), 3)
        if drops[r] <= options.max_accuracy_drop:
            chosen = r
            break
    record = {"max_drop_points": options.max_accuracy_drop, "images": len(inputs),
              "drop_points": drops.get(chosen, 0.0), "largest_r": largest,
              "drop_points_by_r": {str(r): drop for r, drop in sorted(drops.items())}}
    return plan_for(source, chosen), record
