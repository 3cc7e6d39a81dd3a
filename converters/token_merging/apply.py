"""``--token-merging`` in a conversion: resolve the plan (or let the budget choose R), swap in the token-merged
model, and measure what merging costs against the unmerged model for the manifest.

The exporters then see an ordinary source model: the token-merged one. The artifact is validated against
it (each format within its own tolerance), and the manifest's ``token_merging`` records the schedule,
the tokens per block and the token-merged model's agreement with the unmerged torch fp32 model on the
same validation inputs.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vitedge.converters.export_types import ExportOptions
from vitedge.converters.loading import SourceModel
from vitedge.converters.token_merging.budget import choose_r
from vitedge.converters.token_merging.model import plan_for, token_merged_source
from vitedge.converters.token_merging.plan import METHOD, TokenMergingPlan
from vitedge.converters.token_merging_option import AUTO, is_off
from vitedge.converters.validate import torch_outputs, validation_inputs
from vitedge.metrics import row_cosines, top1_agreement
from vitedge.runtime.manifest import TokenMergingInfo


@dataclass(frozen=True)
class MergedConversion:
    """What a conversion exports with token merging: the merged source, the options the exporter gets
    (R resolved; a budget spent on choosing R taken out) and what the manifest records."""

    source: SourceModel
    options: ExportOptions
    info: TokenMergingInfo | None


def prepare_token_merging(
    source: SourceModel,
    options: ExportOptions,
    *,
    samples: int,
    images_dir: str | os.PathLike | None,
    stage: Callable[[str], None],
) -> MergedConversion:
    """Resolve ``options.token_merging`` for ``source``; off (0) leaves everything as it is.

    Raises:
        UsageError: a family without token merging, an R or schedule the model's tokens do not allow,
            or ``auto`` on random-init weights.
    """
    value = options.token_merging
    if is_off(value):
        return MergedConversion(source, dataclasses.replace(options, token_merging=0), None)
    budget = None
    if value == AUTO:
        stage(f"choosing token merging R within a {options.max_accuracy_drop:g}-point top-1 budget")
        plan, budget = choose_r(source, options)
        stage(f"token merging: R = {plan.r} ({budget['drop_points']:g} points below the unmerged model)")
        options = dataclasses.replace(options, token_merging=plan.r, max_accuracy_drop=None)  # the budget is spent
    else:
        plan = plan_for(source, value)
    merged = token_merged_source(source, plan)
    against = against_unmerged(source, merged, samples=samples, images_dir=images_dir) if plan.merges else None
    return MergedConversion(merged, options, token_merging_info(plan, against, budget))


def token_merging_info(plan: TokenMergingPlan, against: dict | None, budget: dict | None) -> TokenMergingInfo:
    return TokenMergingInfo(method=METHOD, schedule=plan.schedule, tokens=plan.tokens, final_tokens=plan.final_tokens,
                            protected_tokens=plan.protected, r=plan.r, against_unmerged=against, budget=budget)


def against_unmerged(source: SourceModel, merged: SourceModel, *, samples: int,
                     images_dir: str | os.PathLike | None) -> dict:
    """The token-merged torch fp32 model against the unmerged one on the validation inputs."""
    inputs, description = validation_inputs(source.preprocess, samples, images_dir=images_dir)
    reference, candidate = torch_outputs(source, inputs), torch_outputs(merged, inputs)
    return {"reference": "torch fp32, unmerged", "samples": len(inputs), "inputs": description,
            **compare_logits(reference, candidate)}


def compare_logits(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> dict[str, float]:
    """Top-1 agreement and cosines of ``candidate``'s outputs with ``reference``'s."""
    logits = row_cosines(reference["logits"], candidate["logits"])
    return {"top1_agreement": top1_agreement(reference["logits"], candidate["logits"]),
            "min_logits_cosine": float(logits.min()), "mean_logits_cosine": float(logits.mean()),
            "min_embedding_cosine": float(row_cosines(reference["embedding"], candidate["embedding"]).min())}
