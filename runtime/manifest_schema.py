"""The manifest's JSON Schema, built from the registries and published as ``schemas/artifact-1.schema.json``.

Every reader validates a manifest against it: the Python runtime on load (with the dependency-free
checker in :mod:`vitedge.runtime.schema_check`), the demo apps' Kotlin and Swift cores, third-party
tools. The published file is this module's output; a test fails when they differ. Regenerate it with
``python -c "from vitedge.runtime.manifest_schema import write_schema_file; write_schema_file()"``.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from vitedge.formats import FORMATS
from vitedge.runtime.preprocess_spec import LAYOUTS, RESAMPLE_FILTERS

SCHEMA_FAMILY = "vitedge.artifact"
SCHEMA_VERSION = 1
WEIGHT_KINDS = ("pretrained", "finetuned", "trained", "distilled", "random-init")
DTYPES = ("float32", "float16", "uint8", "int8", "int16")
SCHEMA_FILE = Path(__file__).parent / "schemas" / f"artifact-{SCHEMA_VERSION}.schema.json"

MAX_INT32 = 2**31 - 1  # what the Kotlin and Swift cores read as Int
MAX_SAFE_INTEGER = 2**53 - 1  # exact in every JSON reader (file sizes)
MAX_IMAGE_SIDE = 16384
MAX_CLASS_DIGITS = 6  # class indexes below 1,000,000 (the runtime lists every label up to the largest)
_END = r"(?![\s\S])"  # end of text; '$' would also match before a final newline
FILE_PATH_PATTERN = r"^(?![/\\])(?![A-Za-z]:)(?![\s\S]*(?:^|/)\.\.(?:/|" + _END + r"))[^\x00-\x1f\\]+" + _END
SHA256_PATTERN = "^[0-9a-f]{64}" + _END


def _integer(minimum: int, maximum: int, description: str, *, nullable: bool = False) -> dict[str, Any]:
    return {"type": ["integer", "null"] if nullable else "integer", "minimum": minimum, "maximum": maximum,
            "description": description}


def _string(*, nullable: bool = False, description: str = "a non-empty string") -> dict[str, Any]:
    return {"type": ["string", "null"] if nullable else "string", "minLength": 1,
            "description": description + (" or null" if nullable else "")}


def _enum(choices: tuple[str, ...], *, nullable: bool = False) -> dict[str, Any]:
    return {"enum": [*choices, None] if nullable else list(choices)}


def _obj(properties: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": properties, "additionalProperties": False,
            **extra}


def _file_path(*, nullable: bool = False) -> dict[str, Any]:
    return {"type": ["string", "null"] if nullable else "string", "minLength": 1, "pattern": FILE_PATH_PATTERN,
            "description": "a relative path inside the artifact folder (no '..', not absolute)"
            + (" or null" if nullable else "")}


def _side_pair(name: str) -> dict[str, Any]:
    return {"type": ["array", "null"], "minItems": 2, "maxItems": 2,
            "items": _integer(1, MAX_IMAGE_SIDE, f"a side length from 1 to {MAX_IMAGE_SIDE}"),
            "description": f"{name} as [height, width] or null"}


def _three_numbers(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": ["array", "null"], "minItems": 3, "maxItems": 3, "items": item,
            "description": "a list of 3 numbers (one per channel) or null"}


def _defs() -> dict[str, Any]:
    quantization = _obj(
        {"dtype": _enum(DTYPES), "scale": {"type": "number", "exclusiveMinimum": 0, "description": "a positive number"},
         "zero_point": {"$ref": "#/$defs/zero_point"}},
        ("dtype", "scale", "zero_point"),
        description="an object with dtype, scale and zero_point (real = scale * (q - zero_point))",
    )
    return {
        "zero_point": _integer(-32768, 65535, "an integer from -32768 to 65535", nullable=True),
        "quantization": quantization,
        "number_or_null": {"type": ["number", "null"]},
    }


def _files() -> dict[str, Any]:
    entry = _obj({"path": _file_path(),
                  "sha256": {"type": "string", "pattern": SHA256_PATTERN, "description": "64 lowercase hex digits"},
                  "bytes": _integer(0, MAX_SAFE_INTEGER, "a file size in bytes (>= 0)")},
                 ("path", "sha256", "bytes"))
    return {"type": "array", "minItems": 1, "items": entry, "description": "a non-empty list of files"}


def _selfcheck() -> dict[str, Any]:
    block = _obj({"index": _file_path(), "files": _files()}, ("index", "files"),
                 description="the self-check the conversion wrote: its index.json and its files with their checksums")
    return {**block, "type": ["object", "null"]}


def _input() -> dict[str, Any]:
    dimension = _integer(1, MAX_INT32, "a positive integer, or null for a dynamic dimension", nullable=True)
    return _obj({
        "name": _string(),
        "layout": _enum(LAYOUTS),
        "dtype": _enum(DTYPES),
        "shape": {"type": "array", "minItems": 4, "maxItems": 4, "items": dimension,
                  "description": "a list of 4 dimensions"},
        "dynamic_batch": {"type": "boolean"},
        "scale": {"type": ["number", "null"], "exclusiveMinimum": 0, "description": "a positive number or null"},
        "zero_point": {"$ref": "#/$defs/zero_point"},
    }, ("name", "layout", "dtype", "shape", "dynamic_batch"))


def _outputs() -> dict[str, Any]:
    quantized = {"type": ["object", "null"], "additionalProperties": False,
                 "properties": {"logits": {"$ref": "#/$defs/quantization"},
                                "embedding": {"$ref": "#/$defs/quantization"}}}
    return _obj({
        "logits": _string(),
        "embedding": _string(nullable=True),
        "embedding_size": _integer(1, MAX_INT32, "a positive integer or null", nullable=True),
        "num_classes": _integer(1, MAX_INT32, "a positive integer or null", nullable=True),
        "quantization": quantized,
    }, ("logits",))


def _preprocess() -> dict[str, Any]:
    exact_needs_size = {"if": {"properties": {"resize_mode": {"enum": ["exact"]}}},
                        "then": {"properties": {"size": {"type": "array",
                                                         "description": "[height, width] (resize_mode 'exact' needs size)"}}}}
    shortest_needs_edge = {
        "if": {"required": ["resize_mode"], "properties": {"resize_mode": {"enum": ["shortest_edge"]}}},
        "then": {"required": ["shortest_edge"],
                 "properties": {"shortest_edge": {"type": "integer",
                                                  "description": "a side length (resize_mode 'shortest_edge' needs it)"}}},
    }
    side = _integer(1, MAX_IMAGE_SIDE, f"a side length from 1 to {MAX_IMAGE_SIDE} or null", nullable=True)
    return _obj({
        "resize_mode": _enum(("exact", "shortest_edge", "none")),
        "size": _side_pair("size"),
        "shortest_edge": side,
        "resample": _enum(RESAMPLE_FILTERS),
        "crop_size": _side_pair("crop_size"),
        "rescale_factor": {"type": ["number", "null"], "exclusiveMinimum": 0, "description": "a positive number or null"},
        "mean": _three_numbers({"type": "number", "minimum": -65535, "maximum": 65535,
                                "description": "a number from -65535 to 65535"}),
        "std": _three_numbers({"type": "number", "exclusiveMinimum": 0, "maximum": 65535,
                               "description": "a positive number up to 65535"}),
        "channel_order": _enum(("RGB", "BGR")),
        "layout": _enum(LAYOUTS),
        "normalization_in_model": {"type": "boolean"},
    }, allOf=[exact_needs_size, shortest_needs_edge],
        description="how an image becomes the input tensor; absent keys take the runtime's defaults")


def _labels() -> dict[str, Any]:
    index = {"type": "string", "pattern": f"^(?:0|[1-9][0-9]{{0,{MAX_CLASS_DIGITS - 1}}}){_END}",
             "description": f"a class index (0, 1, 2, ... below {10**MAX_CLASS_DIGITS:,})"}
    return {"type": "object", "propertyNames": index, "additionalProperties": {"type": "string"}}


def _source() -> dict[str, Any]:
    return _obj({
        "model": _string(),
        "weights": _enum(WEIGHT_KINDS),
        "revision": {"type": ["string", "null"]},
        "weights_sha256": {"type": ["string", "null"], "pattern": SHA256_PATTERN,
                           "description": "64 lowercase hex digits or null"},
        "seed": _integer(-(2**63), 2**64 - 1, "an integer seed (what torch.manual_seed takes) or null", nullable=True),
        "architecture": {"type": "object"},
    }, ("model", "weights"))


def _conversion() -> dict[str, Any]:
    return _obj({
        "vitedge_version": _string(),
        "created": _string(description="a creation time (ISO 8601)"),
        "tools": {"type": "object", "additionalProperties": {"type": "string"}},
        "recipe": {"type": "object"},
        "calibration": {"type": ["object", "null"]},
    }, ("vitedge_version", "created"))


def _validation() -> dict[str, Any]:
    maybe = {"$ref": "#/$defs/number_or_null"}
    report = _obj({
        "reference": {"type": "string"},
        "samples": _integer(0, MAX_INT32, "a sample count (>= 0)"),
        "inputs": {"type": "string"},
        "top1_agreement": {"type": "number", "minimum": 0, "maximum": 1, "description": "a fraction from 0 to 1"},
        "min_logits_cosine": {"type": "number"},
        "mean_logits_cosine": {"type": "number"},
        "max_abs_diff_logits": {"type": "number"},
        "min_embedding_cosine": maybe,
        "max_abs_diff_embedding": maybe,
        "tolerance": {"type": "object", "additionalProperties": maybe},
        "passed": {"type": "boolean"},
        "failures": {"type": "array", "items": {"type": "string"}},
        "simulated": {"type": "boolean"},
        "execution": {"type": ["object", "null"], "additionalProperties": {"type": "string"},
                      "description": "where and in what precision the artifact ran (runtime, device, precision) or null"},
    }, ("reference", "samples", "inputs", "top1_agreement", "min_logits_cosine", "mean_logits_cosine",
        "max_abs_diff_logits", "min_embedding_cosine", "max_abs_diff_embedding", "tolerance", "passed"))
    return {**report, "type": ["object", "null"]}


def _token_merging() -> dict[str, Any]:
    count = _integer(0, MAX_INT32, "a token count (>= 0)")
    counts = {"type": "array", "minItems": 1, "items": count, "description": "a token count per block"}
    block = _obj({
        "method": _string(),
        "schedule": counts,
        "tokens": counts,
        "final_tokens": count,
        "protected_tokens": count,
        "r": _integer(0, MAX_INT32, "the constant R (tokens merged per block) or null for a schedule", nullable=True),
        "against_unmerged": {"type": ["object", "null"]},
        "budget": {"type": ["object", "null"]},
    }, ("method", "schedule", "tokens", "final_tokens", "protected_tokens"),
        description="token merging (ToMe) built into the graph: tokens merged and tokens entering each block")
    return {**block, "type": ["object", "null"]}


def build_schema() -> dict[str, Any]:
    """The JSON Schema of ``manifest.json`` (draft 2020-12), from the format and weight registries."""
    version = {"type": "string", "pattern": f"^{re.escape(SCHEMA_FAMILY)}/0*[0-{SCHEMA_VERSION}]{_END}",
               "description": f"'{SCHEMA_FAMILY}/{SCHEMA_VERSION}'"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{SCHEMA_FAMILY}/{SCHEMA_VERSION}: a vitedge artifact's manifest.json",
        "$comment": "Generated by vitedge.runtime.manifest_schema; 'integer' values are written without a fraction.",
        "type": "object",
        "required": ["schema", "format", "precision", "files", "input", "outputs", "preprocess", "labels", "source",
                     "conversion"],
        "properties": {
            "schema": version,
            "format": _enum(tuple(FORMATS)),
            "precision": _string(),
            "files": _files(),
            "input": _input(),
            "outputs": _outputs(),
            "preprocess": _preprocess(),
            "labels": _labels(),
            "source": _source(),
            "conversion": _conversion(),
            "validation": _validation(),
            "entry": _file_path(nullable=True),
            "selfcheck": _selfcheck(),
            "token_merging": _token_merging(),
        },
        "$defs": _defs(),
    }


@lru_cache(maxsize=1)
def manifest_schema() -> dict[str, Any]:
    """The schema the runtime validates with (built once; equal to the published file)."""
    return build_schema()


def schema_text() -> str:
    return json.dumps(build_schema(), indent=2, ensure_ascii=False) + "\n"


def write_schema_file() -> Path:
    """Regenerate the published file from :func:`build_schema` (after changing the schema or a registry)."""
    SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
    return SCHEMA_FILE
