"""Write a trained model as a Hugging Face folder that ``vitedge convert`` (and transformers) take.

``config.json`` (with ``id2label``), ``model.safetensors``, ``preprocessor_config.json`` and
``vitedge_training.json``, the record that makes manifests say ``finetuned`` or ``distilled``
(see :data:`vitedge.converters.loading.TRAINING_RECORD`), plus the metrics log. Like conversions,
the folder is written with :func:`vitedge.converters.atomic.atomic_folder` (built beside its
destination, renamed into place at the end); only an earlier training output is ever replaced.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from vitedge.converters.atomic import atomic_folder
from vitedge.converters.family_preprocess import processor_config as family_processor_config
from vitedge.converters.hf_preprocess import PROCESSOR_CONFIG
from vitedge.converters.loading import TRAINING_RECORD
from vitedge.errors import UsageError
from vitedge.runtime.preprocess_spec import PreprocessSpec

WEIGHTS_KINDS = ("finetuned", "distilled")


def check_output(out: Path, *, overwrite: bool) -> None:
    """Refuse early (before training) when ``out`` cannot be written."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder", hint="choose another --out")
    if not overwrite:
        raise UsageError(f"{out}: already exists", hint="pass --overwrite to replace it, or choose another --out")
    if any(out.iterdir()) and not (out / TRAINING_RECORD).is_file():
        raise UsageError(
            f"{out}: exists and is not a vitedge training output; --overwrite only replaces those",
            hint="choose an empty or new --out folder",
        )


def processor_config_for(spec: PreprocessSpec, model_type: str | None = None) -> dict[str, Any]:
    """The family's image processor config that reproduces ``spec`` (for sources without their own)."""
    return family_processor_config(spec, model_type)


def save_training_output(
    model: nn.Module,
    out: Path,
    *,
    spec: PreprocessSpec,
    processor_config: dict[str, Any],
    record: dict[str, Any],
    overwrite: bool = False,
    extra_files: dict[str, Path] | None = None,
) -> Path:
    """Write the folder atomically.

    Args:
        model: A transformers classifier whose config carries the labels.
        out: The folder to create.
        spec: The preprocessing the model was trained with.
        processor_config: The source model's ``preprocessor_config.json`` contents; ``{}`` writes
            one for the model's family from ``spec``.
        record: The training record; its ``weights`` must be one of :data:`WEIGHTS_KINDS`.
        overwrite: Replace an earlier training output at ``out``.
        extra_files: name -> file to copy in (e.g. the metrics log).
    """
    if record.get("weights") not in WEIGHTS_KINDS:
        raise ValueError(f"record['weights'] must be one of {WEIGHTS_KINDS}")
    with atomic_folder(out, overwrite=overwrite, check=check_output) as work:
        save_weights(model, work)
        processor_config = processor_config or processor_config_for(spec, _model_type(model))
        (work / PROCESSOR_CONFIG).write_text(json.dumps(processor_config, indent=2) + "\n")
        (work / TRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        for name, path in (extra_files or {}).items():
            if path.is_file():
                shutil.copyfile(path, work / name)
    return out


def save_weights(model: nn.Module, folder: Path) -> None:
    """``config.json`` and ``model.safetensors`` into ``folder`` (transformers' ``save_pretrained``, no progress bar)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder, safe_serialization=True)
    finally:
        hf_logging.enable_progress_bar()


def save_hf_folder(model: nn.Module, folder: Path, spec: PreprocessSpec, record: dict[str, Any]) -> None:
    """A trained model as a Hugging Face folder that ``vitedge convert`` (and transformers) take.

    The folder is written atomically and replaces whatever ``folder`` held (the quickstart's model, a study's).
    """
    with atomic_folder(folder, overwrite=True, check=None) as work:
        save_weights(model, work)
        (work / PROCESSOR_CONFIG).write_text(json.dumps(processor_config_for(spec, _model_type(model)), indent=2) + "\n")
        (work / TRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n")


def _model_type(model: nn.Module) -> str | None:
    return getattr(getattr(model, "config", None), "model_type", None)
