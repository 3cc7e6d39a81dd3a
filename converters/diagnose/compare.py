"""Per-tap numbers of a diagnosis, and the block where the error jumps.

At each tap: the mean and minimum per-image cosine between the artifact's and the fp32 tensor
(flattened), their relative error ``‖a − r‖ / ‖r‖`` over the batch, the largest absolute difference,
and where the classifier can read the tap (:func:`~vitedge.converters.diagnose.reference.head_lens`),
the top-1 agreement of what it predicts from each. A block's *jump* is how much relative error it
adds to what came in; the block that adds the most is where to look first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vitedge.metrics import row_cosines, top1_agreement

#: Below this much added relative error no block "stands out": the artifact is as good as its precision gets.
MIN_JUMP = 0.005


@dataclass(frozen=True)
class TapStats:
    """The artifact against torch fp32 at one tap."""

    tap: str
    cosine: float
    min_cosine: float
    relative_error: float
    max_abs_error: float
    top1_agreement: float | None = None
    jump: float | None = None

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def tap_stats(tap: str, reference: np.ndarray, candidate: np.ndarray,
              lens: Callable[[np.ndarray], np.ndarray] | None = None) -> TapStats:
    """Compare one tap's tensors (same shape, images first)."""
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    got = candidate.reshape(len(candidate), -1).astype(np.float64)
    cosines = row_cosines(ref, got)
    relative = float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30))
    agreement = None
    if tap == "logits":
        agreement = top1_agreement(reference, candidate)
    elif lens is not None:
        agreement = top1_agreement(lens(reference), lens(candidate))
    return TapStats(tap, float(cosines.mean()), float(cosines.min()), relative, float(np.max(np.abs(got - ref))),
                    agreement)


def with_jumps(stats: Sequence[TapStats]) -> list[TapStats]:
    """The stats with each embeddings/block tap's jump: its relative error minus the previous tap's."""
    previous = 0.0
    out = []
    for entry in stats:
        if entry.tap == "embeddings" or entry.tap.startswith("block "):
            out.append(TapStats(**{**entry.to_dict(), "jump": entry.relative_error - previous}))
            previous = entry.relative_error
        else:
            out.append(entry)
    return out


def culprit(stats: Sequence[TapStats]) -> str | None:
    """The tap with the largest jump, when it adds at least :data:`MIN_JUMP` relative error."""
    jumps = [entry for entry in stats if entry.jump is not None]
    if not jumps:
        return None
    worst = max(jumps, key=lambda entry: entry.jump)
    return worst.tap if worst.jump >= MIN_JUMP else None


def ranking(stats: Sequence[TapStats]) -> list[tuple[str, float]]:
    """Taps by jump, largest first."""
    return sorted(((entry.tap, entry.jump) for entry in stats if entry.jump is not None), key=lambda item: -item[1])


def compare_taps(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray], taps: Sequence[str],
                 lenses: Mapping[str, Callable[[np.ndarray], np.ndarray]]) -> tuple[list[TapStats], dict[str, str]]:
    """Stats for every tap both sides have (with jumps), and why the others are missing."""
    stats, missing = [], {}
    for tap in taps:
        if tap not in candidate or tap not in reference:
            continue
        if candidate[tap].shape != reference[tap].shape:
            missing[tap] = f"the artifact's tensor has shape {candidate[tap].shape}, torch's {reference[tap].shape}"
            continue
        stats.append(tap_stats(tap, reference[tap], candidate[tap], lenses.get(tap)))
    return with_jumps(stats), missing
