"""Load the model to convert: a Hugging Face hub id, a local HF folder, or an architecture preset.

All three end as a :class:`SourceModel`: the torch fp32 model in eval mode, its preprocessing,
its labels and where it came from. Hub models are downloaded (safetensors only unless the user
opts in to pickle) into the Hugging Face cache and then loaded like any local folder, so one code
path, tested on folders the tests make, serves both.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitedge.converters.adapters import TwoOutputClassifier, embedding_kind, supported_model_types
from vitedge.converters.hf_preprocess import load_spec
from vitedge.converters.presets import PRESET_PREFIX, get_preset
from vitedge.errors import ModelLoadError
from vitedge.runtime.manifest import SourceInfo, sha256_file
from vitedge.runtime.preprocess_spec import PreprocessSpec

PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
#: A JSON file a vitedge training run leaves in its output folder: {"weights": "finetuned", ...}.
TRAINING_RECORD = "vitedge_training.json"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class SourceModel:
    """The torch reference a conversion starts from."""

    model: nn.Module
    preprocess: PreprocessSpec
    labels: dict[int, str]
    info: SourceInfo
    processor_config: dict[str, Any] = field(default_factory=dict)

    def two_outputs(self) -> TwoOutputClassifier:
        """The model as ``forward(pixel_values) -> (logits, embedding)``, in eval mode."""
        return TwoOutputClassifier(self.model).eval()

    @property
    def image_size(self) -> int:
        """The input side the graph is exported at: what the preprocessing makes, else the config's.

        They differ for DINOv2, which interpolates its position embeddings (configured at 518,
        preprocessed to 224).
        """
        output = self.preprocess.output_size
        if output is not None:
            return int(output[0])
        size = self.model.config.image_size
        return size if isinstance(size, int) else size[0]


def load_source(
    spec: str,
    *,
    revision: str | None = None,
    allow_pickle: bool = False,
    cache_dir: str | None = None,
    seed: int = 0,
) -> SourceModel:
    """Load ``spec``: ``preset:NAME``, a local folder, or a hub id such as ``google/vit-base-patch16-224``.

    Raises:
        ModelLoadError: unknown preset or model type, missing folder or files, a pickle-only
            checkpoint without ``allow_pickle``, or a download that failed.
    """
    if spec.startswith(PRESET_PREFIX):
        return load_preset(spec, seed=seed)
    path = Path(spec).expanduser()
    if path.exists():
        return load_folder(path, allow_pickle=allow_pickle)
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1 or not _HUB_ID.match(spec):
        raise ModelLoadError(
            f"{spec}: no such folder",
            hint="pass a local Hugging Face folder (config.json + model.safetensors), a hub id, or preset:NAME",
        )
    folder, commit = download_from_hub(spec, revision=revision, allow_pickle=allow_pickle, cache_dir=cache_dir)
    source = load_folder(folder, allow_pickle=allow_pickle, model_name=spec, revision=commit)
    return source


def download_from_hub(
    repo_id: str, *, revision: str | None, allow_pickle: bool, cache_dir: str | None
) -> tuple[Path, str | None]:
    """Download the files a conversion needs into the HF cache; returns (folder, commit hash)."""
    from huggingface_hub import snapshot_download

    patterns = ["config.json", "preprocessor_config.json", "*.safetensors", "model.safetensors.index.json"]
    if allow_pickle:
        patterns += list(PICKLE_FILES)
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=patterns))
    except Exception as error:  # huggingface_hub raises many types: offline, 404, gated, auth
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelLoadError(
            f"{repo_id}: could not download from the Hugging Face Hub ({type(error).__name__}: {reason})",
            hint="check the id, revision and your connection (HF_TOKEN for gated models), or pass a local folder",
        ) from error
    commit = folder.name if re.fullmatch(r"[0-9a-f]{40}", folder.name) else revision
    return folder, commit


def _weights_files(folder: Path, allow_pickle: bool) -> tuple[list[Path], bool]:
    """The weight files to hash, and whether they are safetensors."""
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"], True
    if (folder / "model.safetensors.index.json").is_file():
        index = json.loads((folder / "model.safetensors.index.json").read_text())
        return sorted({folder / name for name in index["weight_map"].values()}), True
    pickles = [folder / name for name in PICKLE_FILES if (folder / name).is_file()]
    if pickles and not allow_pickle:
        raise ModelLoadError(
            f"{folder}: holds only a pickle checkpoint ({pickles[0].name}); loading pickle can run arbitrary code",
            hint="convert it to safetensors, or pass --allow-pickle (Python: allow_pickle=True) if you trust its source",
        )
    if pickles:
        return pickles, False
    raise ModelLoadError(
        f"{folder}: no model weights (model.safetensors)",
        hint="a Hugging Face folder needs config.json and model.safetensors (save_pretrained writes both)",
    )


def load_folder(
    folder: Path, *, allow_pickle: bool = False, model_name: str | None = None, revision: str | None = None
) -> SourceModel:
    """Load a local Hugging Face folder (config.json + model.safetensors [+ preprocessor_config.json])."""
    from transformers import AutoConfig, AutoModelForImageClassification
    from transformers.utils import logging as hf_logging

    if not folder.is_dir():
        raise ModelLoadError(f"{folder}: not a folder", hint="pass the folder that holds config.json and model.safetensors")
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder}: no config.json", hint="is this a Hugging Face model folder (save_pretrained)?")
    try:
        config = AutoConfig.from_pretrained(folder)
    except Exception as error:
        raise ModelLoadError(f"{folder / 'config.json'}: cannot be read ({error})") from error
    if config.model_type not in supported_model_types():
        raise ModelLoadError(
            f"{folder}: model type {config.model_type!r} is not supported yet",
            hint=f"supported: {', '.join(supported_model_types())}",
        )
    weight_files, is_safetensors = _weights_files(folder, allow_pickle)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForImageClassification.from_pretrained(
            folder, config=config, use_safetensors=is_safetensors, dtype=torch.float32
        )
    except Exception as error:
        raise ModelLoadError(f"{folder}: the weights do not load ({type(error).__name__}: {error})") from error
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    model.eval()
    spec, processor_config = load_spec(folder, image_size=_image_size(config))
    record_path = folder / TRAINING_RECORD
    weights = json.loads(record_path.read_text()).get("weights", "pretrained") if record_path.is_file() else "pretrained"
    info = SourceInfo(
        model=model_name or str(folder),
        weights=weights,
        revision=revision,
        weights_sha256=_combined_sha256(weight_files),
        architecture=architecture_summary(model),
    )
    return SourceModel(model, spec, _labels(config), info, processor_config)


def load_preset(spec: str, *, seed: int = 0) -> SourceModel:
    """Build a preset architecture with seeded random weights (reproducible on the same torch)."""
    from transformers import AutoModelForImageClassification

    preset = get_preset(spec)
    config = preset.build_config()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForImageClassification.from_config(config).eval()
    info = SourceInfo(
        model=PRESET_PREFIX + preset.name,
        weights="random-init",
        seed=seed,
        weights_sha256=state_dict_sha256(model),
        architecture=architecture_summary(model),
    )
    return SourceModel(model, preset.preprocess(), _labels(config), info)


def _image_size(config: Any) -> int:
    size = getattr(config, "image_size", 224)
    return size if isinstance(size, int) else size[0]


def _labels(config: Any) -> dict[int, str]:
    return {int(index): str(label) for index, label in config.id2label.items()}


def _combined_sha256(files: list[Path]) -> str:
    if len(files) == 1:
        return sha256_file(files[0])
    digest = hashlib.sha256()
    for path in files:
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def state_dict_sha256(model: nn.Module) -> str:
    """sha256 over the model's tensors in state-dict order (identifies random-init weights)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def architecture_summary(model: nn.Module) -> dict[str, Any]:
    """The manifest's ``source.architecture``: sizes (``None`` where a family has none) and the embedding."""
    config = model.config
    sizes = {key: _plain(getattr(config, key, None)) for key in _ARCHITECTURE_KEYS}
    return {
        "class": type(model).__name__,
        "model_type": config.model_type,
        **sizes,
        "image_size": _image_size(config),
        "num_labels": config.num_labels,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "embedding": embedding_kind(config.model_type),
    }


_ARCHITECTURE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size")


def _plain(value: Any) -> Any:
    """A JSON-friendly config value (Swin's per-stage tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value
