"""What a benchmark worker runs: an artifact through the runtime, or (``torch:MODEL``) PyTorch eager.

Each target loads in stages the worker times one by one (import the backend library, check the
files, load the model) and then runs preprocessed batches, returning logits. Artifacts need only the
runtime and their backend, so a Raspberry Pi with ``vitedge[onnx]`` benchmarks them; the torch
target lives in :mod:`vitedge.benchmarks.torch_target` and is imported only when asked for.
"""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path

import numpy as np

from vitedge.benchmarks.target import Target, TargetInfo
from vitedge.errors import UsageError

TORCH_PREFIX = "torch:"


def is_torch_spec(spec: str) -> bool:
    return spec.startswith(TORCH_PREFIX)


def is_artifact_folder(spec: str) -> bool:
    return (Path(spec) / "manifest.json").is_file()


class ArtifactTarget:
    """An artifact folder, run through the runtime exactly as users run it (torch free).

    Args:
        folder: The artifact folder.
        verify: Check the files' sha256 in :meth:`check_files` (what ``Classifier.open`` does by default).
    """

    def __init__(self, folder: str | Path, *, verify: bool = True) -> None:
        from vitedge.runtime.manifest import read_manifest

        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.preprocess = self.manifest.preprocess
        self.verify = verify
        self._classifier = None

    def import_backend(self) -> None:
        from vitedge.formats import get_format

        module_name = get_format(self.manifest.format).backend.partition(":")[0]
        with contextlib.suppress(ImportError):  # load() says what to install
            importlib.import_module(module_name)

    def check_files(self) -> None:
        from vitedge.runtime.manifest import verify_files

        verify_files(self.folder, self.manifest, checksums=self.verify)

    def load(self, threads: int, device: str | None = None) -> None:
        from vitedge.formats import get_format
        from vitedge.runtime.backends import open_backend
        from vitedge.runtime.classifier import Classifier

        offers = bool(get_format(self.manifest.format).devices)  # a mixed run: the others run where they run
        backend = open_backend(self.folder, self.manifest, num_threads=threads, device=device if offers else None)
        self._classifier = Classifier(self.folder, self.manifest, backend)

    def info(self) -> TargetInfo:
        backend = self._classifier.backend if self._classifier else None
        return TargetInfo(
            format=self.manifest.format,
            precision=self.manifest.precision,
            backend=getattr(backend, "name", "?"),
            backend_version=str(getattr(backend, "version", "?")),
            size_bytes=sum(entry.bytes for entry in self.manifest.files),
            model=self.manifest.source.model,
            weights=self.manifest.source.weights,
            labels=tuple(self._classifier.labels) if self._classifier else (),
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._classifier.run(batch)["logits"]

    def selfcheck(self) -> dict | None:
        """Both verdicts of the artifact's self-check on this device, through the loaded model (no numbers per image)."""
        from vitedge.runtime.selfcheck import run_selfcheck

        return compact_selfcheck(run_selfcheck(self.folder, self.manifest, runner=self._classifier.run).to_dict())


def compact_selfcheck(report: dict) -> dict:
    """A self-check report as a results file keeps it: the verdicts and their headline numbers, not the per-image lists."""
    keep = ("status", "summary", "max_abs_diff", "bit_identical", "images", "top1_agreement", "min_logits_cosine",
            "min_embedding_cosine")
    compact = {key: report[key] for key in ("present", "ok", "hint") if key in report}
    for stage in ("preprocessing", "model"):
        if stage in report:
            compact[stage] = {key: value for key, value in report[stage].items() if key in keep}
    return compact


def open_target(spec: str) -> Target:
    """The target ``spec`` names: ``torch:MODEL`` or an artifact folder.

    Raises:
        ArtifactError: The folder is not a readable artifact.
    """
    if is_torch_spec(spec):
        from vitedge.benchmarks.torch_target import TorchTarget

        return TorchTarget(spec.removeprefix(TORCH_PREFIX))
    return ArtifactTarget(spec)


def reference_spec(spec: str) -> str:
    """Normalize ``--reference``: an artifact folder as it is, anything else as ``torch:MODEL``."""
    if not spec:
        raise UsageError("--reference is empty", hint="pass an artifact folder or a model (hub id, HF folder, preset:NAME)")
    if is_torch_spec(spec) or is_artifact_folder(spec):
        return spec
    return TORCH_PREFIX + spec
