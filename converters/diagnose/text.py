"""What ``vitedge diagnose`` prints: a table per artifact, the block where the error jumps, what to do."""

from __future__ import annotations

from collections.abc import Sequence

from vitedge.converters.diagnose.compare import MIN_JUMP, ranking
from vitedge.converters.diagnose.engine import Diagnosis
from vitedge.converters.stages import FALLBACK_PRECISIONS
from vitedge.formats import get_format
from vitedge.render import table

HEADER = ["tap", "cosine", "min cosine", "rel. error", "jump", "max abs err", "top-1 (head)", ""]
#: How many culprit ops the suggested --keep-float lists before it switches to the whole block.
MAX_LISTED_OPS = 4


def cells(entry, marked: bool) -> list[str]:
    return [
        entry.tap, f"{entry.cosine:.6f}", f"{entry.min_cosine:.6f}", f"{entry.relative_error:.2e}",
        "" if entry.jump is None else f"{entry.jump:+.2e}", f"{entry.max_abs_error:.3g}",
        "" if entry.top1_agreement is None else f"{entry.top1_agreement:.1%}",
        "<- error jumps here" if marked else "",
    ]


def diagnosis_text(diagnosis: Diagnosis) -> str:
    """The table, then what stands out and what to do about it."""
    rows = [cells(entry, entry.tap == diagnosis.culprit) for entry in diagnosis.stats]
    lines = [f"== {diagnosis.label}: {diagnosis.samples} inputs ({diagnosis.inputs}) ==",
             f"read: {diagnosis.how}", table(rows, HEADER)]
    lines += [f"missing {tap}: {why}" for tap, why in diagnosis.missing.items()]
    lines += [f"note: {note}" for note in diagnosis.notes]
    lines += advice(diagnosis)
    return "\n".join(lines)


def advice(diagnosis: Diagnosis) -> list[str]:
    """Which block loses most, the quantized ops in it, and the options that keep it (or all) in float."""
    if not any(entry.jump is not None for entry in diagnosis.stats):
        return ["diagnose could not read this artifact's block outputs (see missing above): only the head is compared"]
    if diagnosis.culprit is None:
        return [f"no block stands out: none adds {MIN_JUMP:.1%} relative error or more "
                "(the artifact is as close to fp32 as its precision allows)"]
    top = ", ".join(f"{tap} ({jump:+.2e})" for tap, jump in ranking(diagnosis.stats)[:3])
    lines = [f"largest jumps: {top}"]
    ops = diagnosis.culprit_ops
    if not ops:
        lines.append(f"{diagnosis.culprit} holds no op stored in reduced precision: its error comes from "
                     "reduced-precision compute or from what came into it")
        return lines + _other_precisions(diagnosis)
    lines.append(f"quantized ops in {diagnosis.culprit}, most sensitive first (sensitivity: the layer's relative "
                 "error when int8-quantized alone in torch, the same proxy for every precision):")
    for name, how in ops.items():
        error = diagnosis.sensitivity.get(name)
        lines.append(f"  {name}: {how}" + ("" if error is None else f" (sensitivity {error:.2e})"))
    if diagnosis.keep_float:
        suggested = diagnosis.suggested_float_ops
        names = ",".join(suggested) if len(suggested) <= MAX_LISTED_OPS else _block_module(suggested)
        lines.append(f"try: vitedge convert MODEL --to {diagnosis.format} --precision {diagnosis.precision} "
                     f"--keep-float {names} --out …")
    else:
        lines.append(f"{get_format(diagnosis.format).title} {diagnosis.precision} does not take --keep-float")
    return lines + _other_precisions(diagnosis)


def _block_module(ops: Sequence[str]) -> str:
    """The module holding all ``ops`` (a block): their longest common dotted prefix."""
    parts = [name.split(".") for name in ops]
    common = []
    for level in zip(*parts):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    return ".".join(common) or ",".join(ops)


def _other_precisions(diagnosis: Diagnosis) -> list[str]:
    fmt = get_format(diagnosis.format)
    lines = []
    if "max_accuracy_drop" in fmt.options and diagnosis.precision.startswith("int8"):
        lines.append("or let the accuracy budget choose the float layers: --max-accuracy-drop POINTS")
    wider = [name for name in FALLBACK_PRECISIONS if name in fmt.precision_names and name != diagnosis.precision]
    if wider and diagnosis.precision != "fp16":
        lines.append(f"or use another precision: --precision {' or '.join(wider)}")
    return lines


def diagnoses_text(diagnoses: Sequence[Diagnosis]) -> str:
    return "\n\n".join(diagnosis_text(diagnosis) for diagnosis in diagnoses)
