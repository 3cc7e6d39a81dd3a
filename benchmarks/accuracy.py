"""Accuracy numbers of one artifact's logits: against the data's labels and against the reference.

The logits come from the worker's untimed pass over the benchmark images; the reference's logits
are computed once per run (its own worker, or reused from the reference's row), so the reference's
inference never lands in any artifact's timing. Rows that are NaN (an unreadable image) on either
side are left out. Numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vitedge.benchmarks.bench_data import BenchData
from vitedge.benchmarks.results import AccuracyStats
from vitedge.metrics import row_cosines, top1_agreement, topk_accuracy


@dataclass(frozen=True)
class ReferenceOutputs:
    """The reference's logits on the benchmark images, or why there are none."""

    name: str
    logits: np.ndarray | None = None
    error: str | None = None


def class_indices(class_names: Sequence[str], model_labels: Sequence[str]) -> np.ndarray | None:
    """For each dataset class, its index among the model's labels; None when a class is missing."""
    position = {label: index for index, label in enumerate(model_labels)}
    if not class_names or any(name not in position for name in class_names):
        return None
    return np.asarray([position[name] for name in class_names])


def _readable(logits: np.ndarray) -> np.ndarray:
    return ~np.isnan(logits).any(axis=1) if logits.size else np.zeros(len(logits), bool)


def measure_accuracy(
    logits: np.ndarray,
    model_labels: Sequence[str],
    data: BenchData,
    reference: ReferenceOutputs | None,
) -> AccuracyStats:
    """Top-1/top-5 against the labels (when the data's classes are the model's) and agreement with the reference."""
    keep = _readable(logits)
    notes: list[str] = []
    top1 = top5 = None
    if data.labelled:
        mapping = class_indices(data.class_names, model_labels)
        if mapping is None:
            notes.append("no top-1/top-5: the data's classes are not among this model's labels")
        elif keep.any():
            truth = mapping[np.asarray(data.labels)[keep]]
            top1 = topk_accuracy(logits[keep], truth, k=1)
            top5 = topk_accuracy(logits[keep], truth, k=5) if logits.shape[1] > 5 else None
    agreement = mean_cosine = min_cosine = None
    if reference is not None and reference.logits is None:
        notes.append(f"reference failed: {reference.error}")
    elif reference is not None and reference.logits.shape != logits.shape:
        notes.append(f"reference outputs {reference.logits.shape[1:]} differ from this model's {logits.shape[1:]}")
    elif reference is not None:
        both = keep & _readable(reference.logits)
        if both.any():
            agreement = top1_agreement(reference.logits[both], logits[both])
            cosines = row_cosines(reference.logits[both], logits[both])
            mean_cosine, min_cosine = float(cosines.mean()), float(cosines.min())
    if not keep.all():
        notes.append(f"{int((~keep).sum())} unreadable images left out")
    return AccuracyStats(
        samples=int(keep.sum()), top1=top1, top5=top5, reference=reference.name if reference else None,
        top1_agreement=agreement, mean_logits_cosine=mean_cosine, min_logits_cosine=min_cosine, note="; ".join(notes),
    )
