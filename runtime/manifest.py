"""The artifact manifest: the contract between converters, runtime, benchmarks and the demo apps.

``manifest.json`` sits beside the model file(s) in an artifact folder. It is the single source of
truth for anything that consumes the model: input tensor, outputs, preprocessing, labels, where the
weights came from, how it was converted, and how well it matches the torch fp32 reference.
Every field is checked on load against the published JSON Schema (:func:`load_schema`), so a
malformed manifest is a one-line :class:`~vitedge.errors.ArtifactError` naming the field. Torch free.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from vitedge.errors import ArtifactError
from vitedge.formats import FORMATS
from vitedge.runtime.manifest_schema import (
    SCHEMA_FAMILY,
    SCHEMA_FILE,
    SCHEMA_VERSION,
    WEIGHT_KINDS,
    manifest_schema,
)
from vitedge.runtime.preprocess_spec import PreprocessSpec
from vitedge.runtime.schema_check import SchemaViolation, check

SCHEMA = f"{SCHEMA_FAMILY}/{SCHEMA_VERSION}"
MANIFEST_NAME = "manifest.json"
RECREATE = "re-create the artifact with vitedge convert"
RANDOM_INIT_WARNING = "random-init weights: this artifact is for latency work, its predictions are meaningless"


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    """A file of the artifact, relative to its folder, with its checksum."""

    path: str
    sha256: str
    bytes: int

    @classmethod
    def of(cls, folder: Path, relative: str) -> FileEntry:
        full = folder / relative
        return cls(path=relative, sha256=sha256_file(full), bytes=full.stat().st_size)


@dataclass(frozen=True)
class SelfCheckFiles:
    """The self-check a conversion writes into the artifact (``selfcheck/``, see :mod:`vitedge.runtime.selfcheck`).

    ``index`` is its ``index.json``; ``files`` lists every file of it with its checksum, checked on
    open like the model's (a tampered self-check is refused as a tampered model is).
    """

    index: str
    files: tuple[FileEntry, ...]


@dataclass(frozen=True)
class InputSpec:
    """The model's input tensor.

    ``shape`` uses None for the batch dimension when ``dynamic_batch`` is True. ``scale`` and
    ``zero_point`` describe a quantized input (real = scale * (q - zero_point)); None for float.
    """

    name: str
    layout: str
    dtype: str
    shape: tuple[int | None, ...]
    dynamic_batch: bool
    scale: float | None = None
    zero_point: int | None = None

    @property
    def fixed_batch(self) -> int | None:
        return None if self.dynamic_batch else self.shape[0]


@dataclass(frozen=True)
class OutputsSpec:
    """Names of the model's outputs: the logits, and the pooled embedding when present.

    ``quantization`` describes quantized outputs, per output key (``"logits"``, ``"embedding"``):
    ``{"dtype": "int8", "scale": s, "zero_point": z}`` with real = s * (q - z); None when float.
    """

    logits: str
    embedding: str | None = None
    embedding_size: int | None = None
    num_classes: int | None = None
    quantization: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True)
class SourceInfo:
    """Where the weights came from."""

    model: str
    weights: str
    revision: str | None = None
    weights_sha256: str | None = None
    seed: int | None = None
    architecture: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.weights not in WEIGHT_KINDS:  # the schema's enum for source.weights, for manifests built in code
            raise ValueError(f"SourceInfo.weights {self.weights!r} is not one of {', '.join(WEIGHT_KINDS)}")


@dataclass(frozen=True)
class ConversionInfo:
    """How the artifact was made."""

    vitedge_version: str
    created: str
    tools: dict[str, str] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None


@dataclass(frozen=True)
class ValidationReport:
    """The artifact measured against the torch fp32 reference on the same inputs.

    ``simulated`` is True when the numbers come from a stand-in (e.g. decompressed weights in torch)
    rather than from running the artifact itself. ``execution`` says where and in what precision the
    artifact ran, as its backend reported it (e.g. ``{"runtime": "openvino 2026.4.1", "device": "CPU",
    "precision": "bf16"}``); None where the backend does not say.
    """

    reference: str
    samples: int
    inputs: str
    top1_agreement: float
    min_logits_cosine: float
    mean_logits_cosine: float
    max_abs_diff_logits: float
    min_embedding_cosine: float | None
    max_abs_diff_embedding: float | None
    tolerance: dict[str, float | None]
    passed: bool
    failures: tuple[str, ...] = ()
    simulated: bool = False
    execution: dict[str, str] | None = None


@dataclass(frozen=True)
class TokenMergingInfo:
    """Token merging (ToMe) built into the graph: what was merged where, and what it costs.

    ``schedule[i]`` tokens merge in block ``i``, which ``tokens[i]`` tokens enter (static counts: the
    graph's shapes); ``r`` is the constant R asked for or chosen by an accuracy ``budget`` (None for a
    schedule per block). The artifact's ``validation`` is against the token-merged torch fp32 model;
    ``against_unmerged`` measures that model against the unmerged one (the accuracy cost).
    """

    method: str
    schedule: tuple[int, ...]
    tokens: tuple[int, ...]
    final_tokens: int
    protected_tokens: int
    r: int | None = None
    against_unmerged: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None


@dataclass(frozen=True)
class Manifest:
    """The whole manifest. Build one in the converters; read one with :func:`read_manifest`."""

    format: str
    precision: str
    files: tuple[FileEntry, ...]
    input: InputSpec
    outputs: OutputsSpec
    preprocess: PreprocessSpec
    labels: dict[int, str]
    source: SourceInfo
    conversion: ConversionInfo
    validation: ValidationReport | None = None
    entry: str | None = None
    selfcheck: SelfCheckFiles | None = None
    token_merging: TokenMergingInfo | None = None
    schema: str = SCHEMA

    @property
    def model_file(self) -> str:
        """What the backend opens: ``entry`` (e.g. a Core ML .mlpackage folder) or the first file."""
        return self.entry or self.files[0].path

    @property
    def is_random_init(self) -> bool:
        return self.source.weights == "random-init"

    def with_validation(self, report: ValidationReport) -> Manifest:
        return replace(self, validation=report)

    def with_selfcheck(self, selfcheck: SelfCheckFiles | None) -> Manifest:
        return replace(self, selfcheck=selfcheck)

    @property
    def all_files(self) -> tuple[FileEntry, ...]:
        """The model's files, then the self-check's (the model's alone are :attr:`files`, e.g. for its size)."""
        return self.files + (self.selfcheck.files if self.selfcheck else ())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.selfcheck is None:  # artifacts without a self-check keep the manifest they always had
            del data["selfcheck"]
        if self.token_merging is None:  # only token-merged artifacts carry the field
            del data["token_merging"]
        if self.validation is not None and self.validation.execution is None:  # only backends that report it
            del data["validation"]["execution"]
        data["labels"] = {str(index): label for index, label in sorted(self.labels.items())}
        ordered = {"schema": data.pop("schema")}
        ordered.update(data)
        return ordered

    def write(self, folder: str | os.PathLike) -> Path:
        path = Path(folder) / MANIFEST_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "manifest") -> Manifest:
        """Parse and validate a manifest dictionary; ArtifactError says what is wrong."""
        if not isinstance(data, dict):
            raise ArtifactError(f"{where}: not a JSON object")
        check_schema(data.get("schema"), where)
        missing = [key for key in manifest_schema()["required"] if key not in data]
        if missing:
            raise ArtifactError(f"{where}: missing fields {', '.join(missing)}", hint=RECREATE)
        if not isinstance(data["format"], str) or data["format"] not in FORMATS:
            raise ArtifactError(
                f"{where}: unknown format {data['format']!r}",
                hint=f"this vitedge knows {', '.join(FORMATS)}; upgrade vitedge if the artifact is newer",
            )
        check_fields(data, where)
        try:
            validation = data.get("validation")
            input_data = dict(data["input"])
            input_data["shape"] = tuple(input_data["shape"])
            return cls(
                schema=data["schema"],
                format=data["format"],
                precision=data["precision"],
                files=tuple(FileEntry(**entry) for entry in data["files"]),
                input=InputSpec(**input_data),
                outputs=OutputsSpec(**data["outputs"]),
                preprocess=PreprocessSpec.from_dict(data["preprocess"]),
                labels={int(index): str(label) for index, label in data["labels"].items()},
                source=SourceInfo(**data["source"]),
                conversion=ConversionInfo(**data["conversion"]),
                validation=None if validation is None else _validation_from_dict(validation),
                entry=data.get("entry"),
                selfcheck=_selfcheck_from_dict(data.get("selfcheck")),
                token_merging=_token_merging_from_dict(data.get("token_merging")),
            )
        except ArtifactError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError) as error:  # the schema lets nothing through: a bug
            raise ArtifactError(f"{where}: malformed ({error})", hint=RECREATE) from error


def _selfcheck_from_dict(data: dict[str, Any] | None) -> SelfCheckFiles | None:
    if data is None:
        return None
    return SelfCheckFiles(index=data["index"], files=tuple(FileEntry(**entry) for entry in data["files"]))


def _token_merging_from_dict(data: dict[str, Any] | None) -> TokenMergingInfo | None:
    if data is None:
        return None
    return TokenMergingInfo(**{**data, "schedule": tuple(data["schedule"]), "tokens": tuple(data["tokens"])})


def _validation_from_dict(data: dict[str, Any]) -> ValidationReport:
    values = dict(data)
    values["failures"] = tuple(values.get("failures", ()))
    return ValidationReport(**values)


def schema_path() -> Path:
    """The published JSON Schema of ``manifest.json`` (shipped in the wheel, beside this module)."""
    return SCHEMA_FILE


def load_schema() -> dict[str, Any]:
    """The published JSON Schema of ``manifest.json``, as a dict (for ``jsonschema`` and other tools)."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def check_fields(data: dict[str, Any], where: str = "manifest") -> None:
    """Check every field's presence, type and range against the schema; ArtifactError names the first bad one."""
    try:
        check(data, manifest_schema())
    except SchemaViolation as violation:
        raise ArtifactError(f"{where}: {violation}", hint=f"malformed manifest: {RECREATE}") from violation


def check_schema(schema: Any, where: str) -> None:
    """Accept this schema version (and older ones of the family); refuse anything else clearly."""
    if not isinstance(schema, str) or "/" not in schema:
        raise ArtifactError(f"{where}: no 'schema' field naming a vitedge artifact", hint=f"expected {SCHEMA!r}")
    family, _, version = schema.partition("/")
    if family != SCHEMA_FAMILY or not (version.isascii() and version.isdigit()):
        raise ArtifactError(f"{where}: unknown manifest schema {schema!r}", hint=f"expected {SCHEMA!r}")
    if int(version) > SCHEMA_VERSION:
        raise ArtifactError(
            f"{where}: manifest schema {schema!r} is newer than this vitedge understands ({SCHEMA!r})",
            hint="upgrade vitedge: pip install -U vitedge",
        )


def read_manifest(folder: str | os.PathLike) -> Manifest:
    """Read and validate ``folder/manifest.json``."""
    folder = Path(folder)
    if not folder.exists():
        raise ArtifactError(f"{folder}: no such artifact folder", hint="pass the --out folder of vitedge convert")
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: not a folder", hint="an artifact is the folder vitedge convert wrote, not the model file")
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ArtifactError(f"{path}: missing", hint="this folder is not a vitedge artifact (vitedge convert writes one)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:  # ValueError: bad JSON, 4300+ digit numbers
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise ArtifactError(f"{path}: not valid JSON ({reason})", hint=RECREATE) from error
    except OSError as error:
        raise ArtifactError(f"{path}: cannot be read ({error.strerror or error})", hint="check its permissions") from error
    return Manifest.from_dict(data, where=str(path))


def verify_files(folder: str | os.PathLike, manifest: Manifest, *, checksums: bool = True) -> None:
    """Check every file the manifest lists, the self-check's too: present, right size, and (by default) right sha256."""
    folder = Path(folder)
    selfcheck = set(manifest.selfcheck.files if manifest.selfcheck else ())
    for entry in manifest.all_files:
        path = folder / entry.path
        if not path.is_file():
            what = "self-check file" if entry in selfcheck else "model file"
            raise ArtifactError(f"{path}: {what} missing", hint="the artifact is incomplete; re-create it with vitedge convert")
        size = path.stat().st_size
        if size != entry.bytes:
            raise ArtifactError(
                f"{path}: size {size} bytes differs from the manifest's {entry.bytes}",
                hint="the file was modified or truncated; re-create or re-copy the artifact",
            )
        if checksums and sha256_file(path) != entry.sha256:
            raise ArtifactError(
                f"{path}: sha256 checksum mismatch with the manifest",
                hint="the file was modified or corrupted; re-create or re-copy the artifact",
            )
