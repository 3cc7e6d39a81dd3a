"""``vitedge verify``: re-check an artifact's files, run its self-check, and, when the source model is at hand, its parity.

Three checks, each a line (``--json``: one object):

1. checksums of the model's files and of the self-check's (always);
2. the self-check (:mod:`vitedge.runtime.selfcheck`, torch free): this machine's preprocessing and
   model outputs against what the conversion computed, two verdicts;
3. parity against the source model in torch (only where torch, transformers and the model are available).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitedge.converters.export_types import DEFAULT_VALIDATION_SAMPLES
from vitedge.errors import ModelLoadError
from vitedge.render import validation_text
from vitedge.runtime.manifest import Manifest, ValidationReport, read_manifest, verify_files
from vitedge.runtime.selfcheck import SelfCheckReport, run_selfcheck


@dataclass
class VerifyOutcome:
    """What was checked, line by line, whether it all held, the self-check and the parity report (when measured)."""

    artifact: str = ""
    ok: bool = True
    lines: list[str] = field(default_factory=list)
    report: ValidationReport | None = None
    selfcheck: SelfCheckReport | None = None
    checksums: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object: ``ok``, ``checksums``, ``selfcheck`` (its two verdicts), ``parity`` and the lines."""
        return {"artifact": self.artifact, "ok": self.ok, "checksums": self.checksums,
                "selfcheck": None if self.selfcheck is None else self.selfcheck.to_dict(),
                "parity": self.parity, "lines": self.lines}


def verify_artifact(
    artifact: str | os.PathLike,
    *,
    against: str | None = None,
    samples: int = DEFAULT_VALIDATION_SAMPLES,
    allow_pickle: bool = False,
    num_threads: int | None = None,
    device: str | None = None,
) -> VerifyOutcome:
    """Check checksums (always), the self-check (when the artifact has one) and parity with the source model
    (when it can be loaded).

    Parity is judged as convert judged it: the precision's tolerance, relaxed for random-init
    weights (:func:`vitedge.converters.stages.tolerance_for`); so is the self-check's model parity.

    Args:
        artifact: The artifact folder.
        against: The source model (hub id, folder, preset:NAME); default: the manifest's source.
        samples: Inputs for the parity check.
        allow_pickle: Accept a pickle checkpoint as the source.
        num_threads: Threads for the backend that runs the self-check.
        device: Where the self-check and the parity check run, for formats that offer a choice (OpenVINO:
            CPU, GPU, NPU, AUTO); None: the backend's default.

    Raises:
        ArtifactError: the manifest or a file is missing, malformed or tampered with.
    """
    folder = Path(artifact)
    manifest = read_manifest(folder)
    verify_files(folder, manifest, checksums=True)
    outcome = VerifyOutcome(artifact=str(artifact))
    selfcheck_files = len(manifest.selfcheck.files) if manifest.selfcheck else 0
    outcome.checksums = {"ok": True, "model_files": len(manifest.files), "selfcheck_files": selfcheck_files}
    also = f" and the self-check's {selfcheck_files}" if selfcheck_files else ""
    outcome.lines.append(f"checksums: OK ({len(manifest.files)} file(s){also} match the manifest)")
    outcome.selfcheck = run_selfcheck(folder, manifest, num_threads=num_threads, device=device)
    outcome.lines.extend(outcome.selfcheck.lines())
    outcome.ok = outcome.selfcheck.ok
    _check_parity(outcome, folder, manifest, against=against, samples=samples, allow_pickle=allow_pickle,
                  device=device)
    return outcome


def _check_parity(outcome: VerifyOutcome, folder: Path, manifest: Manifest, *, against: str | None, samples: int,
                  allow_pickle: bool, device: str | None = None) -> None:
    """Parity against the source model in torch, where torch and the model are at hand (step 3)."""
    try:
        from vitedge.converters.loading import load_source
        from vitedge.converters.stages import tolerance_for
        from vitedge.converters.validate import validator_for
        from vitedge.formats import get_format
    except ImportError as error:
        covered = "; the self-check above ran without it" if outcome.selfcheck and outcome.selfcheck.present else ""
        reason = (f"the converters need torch and transformers ({error.name} is missing); "
                  f"pip install 'vitedge[convert]'{covered}")
        outcome.parity = {"status": "not checked", "reason": reason}
        outcome.lines.append(f"parity: not checked: {reason}")
        return
    model = against or manifest.source.model
    try:
        source = load_source(model, allow_pickle=allow_pickle, seed=manifest.source.seed or 0)
    except ModelLoadError as error:
        reason = f"source {model!r} is not available ({error}); pass --against MODEL"
        outcome.parity = {"status": "not checked", "reason": reason}
        outcome.lines.append(f"parity: not checked: {reason}")
        return
    if source.info.weights_sha256 and manifest.source.weights_sha256 and source.info.weights_sha256 != manifest.source.weights_sha256:
        outcome.lines.append(f"note: {model} has other weights than the artifact was made from (weights sha256 differs)")
    if manifest.token_merging is not None:  # the artifact reproduces the token-merged model
        from vitedge.converters.token_merging.model import plan_for, token_merged_source

        source = token_merged_source(source, plan_for(source, tuple(manifest.token_merging.schedule)))
    fmt = get_format(manifest.format)
    tolerance = tolerance_for(fmt.support(manifest.precision), source)
    on_device = {} if device is None else {"device": device}  # only formats with devices take one
    report = validator_for(fmt)(folder, source, tolerance, samples=samples, **on_device)
    outcome.ok, outcome.report = outcome.ok and report.passed, report
    outcome.parity = {"status": "passed" if report.passed else "failed", "against": model,
                      "failures": list(report.failures), "top1_agreement": report.top1_agreement,
                      "min_logits_cosine": report.min_logits_cosine, "min_embedding_cosine": report.min_embedding_cosine,
                      **({"execution": report.execution} if report.execution else {})}
    outcome.lines.append(f"parity against {model}: {validation_text(report)}")
    converted = manifest.validation.execution if manifest.validation else None
    if converted and report.execution and _where(converted) != _where(report.execution):
        outcome.lines.append(f"note: the conversion validated it on {_where(converted)}; here it ran on "
                             f"{_where(report.execution)}")


def _where(execution: dict[str, str]) -> str:
    return f"{execution.get('device')} in {execution.get('precision')}"
