"""``vitedge diagnose``: the torch fp32 model and one or more artifacts on the same inputs, tap by tap.

    >>> from vitedge.converters.diagnose.engine import diagnose
    >>> [diagnosis] = diagnose(["artifacts/vit-int8"], against="google/vit-base-patch16-224")
    >>> diagnosis.culprit, diagnosis.culprit_ops
    ('block 7', {'vit.layers.7.mlp.fc2': 'int8 weights, calibrated int8 activations (QDQ)'})

Each artifact is read through its format's ``intermediates`` hook (:attr:`vitedge.formats.Format.intermediates`,
see :mod:`.probe`); a format without one is refused in one line, as is an artifact converted from
another architecture or label set than the model it is held against.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitedge.converters.accuracy_budget import SENSITIVITY_SAMPLES, layer_sensitivity
from vitedge.converters.diagnose.compare import TapStats, compare_taps, culprit, ranking
from vitedge.converters.diagnose.probe import ArtifactProbe, ModelLayout
from vitedge.converters.diagnose.reference import head_lens, model_layout, reference_tensors
from vitedge.converters.export_types import DEFAULT_VALIDATION_SAMPLES
from vitedge.converters.layer_names import block_index
from vitedge.converters.loading import SourceModel, load_source
from vitedge.converters.validate import validation_inputs
from vitedge.errors import UsageError
from vitedge.formats import Format, get_format, load_entry_point
from vitedge.runtime.manifest import Manifest, read_manifest, verify_files

#: A culprit op is suggested for --keep-float when quantizing it alone errs at least this fraction of the worst one's.
SUGGEST_FRACTION = 0.25
#: What must match between the model an artifact came from and the one it is held against.
ARCHITECTURE_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "patch_size", "image_size", "num_labels")


@dataclass(frozen=True)
class Diagnosis:
    """One artifact against the torch fp32 model, tap by tap."""

    artifact: str
    format: str
    precision: str
    stats: tuple[TapStats, ...]
    culprit: str | None
    culprit_ops: dict[str, str]
    quantized_ops: dict[str, str]
    how: str
    inputs: str
    samples: int
    missing: dict[str, str] = field(default_factory=dict)
    keep_float: bool = True
    notes: tuple[str, ...] = ()
    #: Culprit op → relative output error when int8-quantized alone (:func:`~vitedge.converters.accuracy_budget.layer_sensitivity`).
    sensitivity: dict[str, float] = field(default_factory=dict)

    @property
    def suggested_float_ops(self) -> tuple[str, ...]:
        """The culprit ops to keep in float: the most sensitive ones (within a quarter of the worst's
        error), or all of them where the sensitivity cannot be measured."""
        if not self.sensitivity or len(self.sensitivity) < len(self.culprit_ops):
            return tuple(self.culprit_ops)
        worst = max(self.sensitivity.values())
        return tuple(name for name in self.culprit_ops if self.sensitivity[name] >= SUGGEST_FRACTION * worst)

    @property
    def label(self) -> str:
        return f"{Path(self.artifact).name} ({self.format} {self.precision})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact, "format": self.format, "precision": self.precision,
            "samples": self.samples, "inputs": self.inputs, "how": self.how,
            "taps": [entry.to_dict() for entry in self.stats], "culprit": self.culprit,
            "culprit_ops": self.culprit_ops, "sensitivity": self.sensitivity,
            "suggested_keep_float": list(self.suggested_float_ops), "ranking": [{"tap": tap, "jump": jump} for tap, jump in ranking(self.stats)],
            "quantized_ops": self.quantized_ops, "missing": self.missing, "notes": list(self.notes),
        }


def check_pair(folder: str, manifest: Manifest, source: SourceModel) -> tuple[str, ...]:
    """Refuse an artifact converted from another architecture or label set; notes about other weights.

    Raises:
        UsageError: the architectures or the label sets differ.
    """
    theirs, ours = manifest.source.architecture, source.info.architecture
    differ = [key for key in ARCHITECTURE_KEYS if key in theirs and key in ours and theirs[key] != ours[key]]
    if differ:
        what = ", ".join(f"{key} {theirs[key]} vs {ours[key]}" for key in differ)
        raise UsageError(f"{folder} was converted from another architecture than {source.info.model} ({what})",
                         hint=f"pass --against the model it was converted from ({manifest.source.model})")
    if dict(manifest.labels) != dict(source.labels):
        shown = ", ".join(list(manifest.labels.values())[:3])
        raise UsageError(
            f"{folder} has other labels than {source.info.model} ({len(manifest.labels)} labels: {shown}, … "
            f"vs {len(source.labels)})",
            hint=f"pass --against the model it was converted from ({manifest.source.model})",
        )
    if manifest.source.weights_sha256 and manifest.source.weights_sha256 != source.info.weights_sha256:
        return (f"the artifact was converted from other weights than {source.info.model} (their sha256 differ): "
                "expect differences from the embeddings on",)
    return ()


def _format_with_hook(folder: str, manifest: Manifest) -> Format:
    fmt = get_format(manifest.format)
    if not fmt.intermediates:
        raise UsageError(f"{folder}: {fmt.title} artifacts cannot expose their intermediate tensors yet",
                         hint="diagnose an artifact of another format converted from the same model")
    return fmt


def diagnose(
    artifacts: Sequence[str | os.PathLike],
    against: str | SourceModel,
    *,
    samples: int = DEFAULT_VALIDATION_SAMPLES,
    images_dir: str | os.PathLike | None = None,
    allow_pickle: bool = False,
) -> list[Diagnosis]:
    """Diagnose each artifact against the torch fp32 model ``against`` on the same ``samples`` inputs.

    Raises:
        UsageError: a format without an ``intermediates`` hook, or an artifact and model that do not belong together.
        ArtifactError: a missing or tampered artifact.
    """
    manifests = []
    for artifact in artifacts:
        manifest = read_manifest(artifact)
        verify_files(artifact, manifest)
        manifests.append((str(artifact), manifest, _format_with_hook(str(artifact), manifest)))
    source = against if isinstance(against, SourceModel) else load_source(str(against), allow_pickle=allow_pickle)
    for folder, manifest, _ in manifests:
        check_pair(folder, manifest, source)  # all refusals before the slow part
    source = _as_merged(source, [manifest for _, manifest, _ in manifests])
    reference = _Reference.of(source, samples, images_dir)
    return [_diagnose_one(folder, manifest, fmt, reference) for folder, manifest, fmt in manifests]


def _as_merged(source: SourceModel, manifests: Sequence[Manifest]) -> SourceModel:
    """The torch model the artifacts reproduce: token-merged as theirs are (one schedule for all of them)."""
    schedules = {None if m.token_merging is None else tuple(m.token_merging.schedule) for m in manifests}
    if len(schedules) > 1:
        raise UsageError("these artifacts merge tokens differently (token_merging in their manifests): "
                         "diagnose compares all of them with one torch model", hint="diagnose them one at a time")
    (schedule,) = schedules
    if schedule is None:
        return source
    from vitedge.converters.token_merging.model import plan_for, token_merged_source

    return token_merged_source(source, plan_for(source, schedule))


@dataclass(frozen=True)
class _Reference:
    """The torch side, computed once for every artifact."""

    source: SourceModel
    layout: ModelLayout
    inputs: Any
    description: str
    tensors: dict[str, Any]
    lenses: dict[str, Any]
    samples: int
    images_dir: str | os.PathLike | None

    @classmethod
    def of(cls, source: SourceModel, samples: int, images_dir: str | os.PathLike | None) -> _Reference:
        layout = model_layout(source.model)
        inputs, description = validation_inputs(source.preprocess, samples, images_dir=images_dir)
        return cls(source, layout, inputs, description, reference_tensors(source, inputs, layout),
                   head_lens(source, layout), samples, images_dir)

    def inputs_for(self, manifest: Manifest):
        """The same images, preprocessed as the artifact expects (an NHWC or raw-pixel input differs)."""
        if manifest.preprocess == self.source.preprocess:
            return self.inputs
        return validation_inputs(manifest.preprocess, self.samples, images_dir=self.images_dir)[0]


def _diagnose_one(folder: str, manifest: Manifest, fmt: Format, reference: _Reference) -> Diagnosis:
    hook = load_entry_point(fmt.intermediates)
    probe: ArtifactProbe = hook(Path(folder), manifest, reference.inputs_for(manifest), reference.layout,
                                reference.source)
    stats, mismatched = compare_taps(reference.tensors, probe.tensors, [tap.name for tap in reference.layout.taps],
                                     reference.lenses)
    worst = culprit(stats)
    ops = ops_in(worst, probe.quantized_ops)
    sensitivity = layer_sensitivity(reference.source, reference.inputs[:SENSITIVITY_SAMPLES], list(ops)) if ops else {}
    return Diagnosis(
        artifact=folder, format=manifest.format, precision=manifest.precision, stats=tuple(stats), culprit=worst,
        culprit_ops=dict(sorted(ops.items(), key=lambda item: -sensitivity.get(item[0], float("inf")))),
        sensitivity=sensitivity, quantized_ops=dict(probe.quantized_ops), how=probe.how,
        inputs=reference.description, samples=len(reference.inputs), missing={**probe.missing, **mismatched},
        keep_float=probe.keep_float and "keep_float" in fmt.options,
        notes=check_pair(folder, manifest, reference.source),
    )


def ops_in(tap: str | None, quantized_ops: dict[str, str]) -> dict[str, str]:
    """The quantized ops inside a tap's module: a block's, or the embeddings'."""
    if tap is None:
        return {}
    if tap.startswith("block "):
        block = int(tap.split()[1])
        return {name: how for name, how in quantized_ops.items() if block_index(name) == block}
    if tap == "embeddings":
        return {name: how for name, how in quantized_ops.items() if ".embeddings." in f".{name}."}
    return {}
