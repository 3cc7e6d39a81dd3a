"""The published manifest JSON Schema: real manifests follow it, and the runtime's loader agrees with it.

``jsonschema`` (a dev dependency) is the reference validator here; the runtime itself checks manifests
with its own dependency-free checker (vitedge.runtime.schema_check), so these tests keep the two in
step: same verdict on every mutation, and every rejection a one-line ArtifactError naming the field.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

jsonschema = pytest.importorskip("jsonschema")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from vitedge.errors import ArtifactError  # noqa: E402
from vitedge.formats import FORMATS  # noqa: E402
from vitedge.runtime.manifest import WEIGHT_KINDS, Manifest, load_schema, read_manifest, schema_path  # noqa: E402
from vitedge.runtime.manifest_schema import build_schema  # noqa: E402
from vitedge.runtime.preprocess_spec import LAYOUTS, RESAMPLE_FILTERS  # noqa: E402
from vitedge.runtime.schema_check import KEYWORDS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_MANIFESTS = sorted((ROOT / "demo_golden").glob("*/*/manifest.json"))
CONVERTED_MANIFESTS = sorted((Path(__file__).parent / "data" / "manifests").glob("*.json"))  # tflite, Core ML, OpenVINO
KOTLIN_MANIFEST = ROOT / "android_demo/core/src/main/kotlin/dev/vitedge/core/Manifest.kt"
SWIFT_MANIFEST = ROOT / "ios_demo/VitedgeCore/Sources/VitedgeCore/Manifest.swift"
SWIFT_PREPROCESS = ROOT / "ios_demo/VitedgeCore/Sources/VitedgeCore/PreprocessSpec.swift"
PATH_ATTACKS = ("../model.onnx", "/etc/passwd", "a/../../b", "C:\\model.onnx", "..", "a\\..\\b", "model\n.onnx", "")

_strict_types = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(  # the runtime's 'integer': 3, not 3.0
    "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
)
Reference = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_strict_types)
REFERENCE = Reference(load_schema())


def _loader_verdict(data) -> str | None:
    """None when the runtime accepts the manifest, else its error; anything but ArtifactError fails."""
    try:
        Manifest.from_dict(data, where="manifest.json")
    except ArtifactError as error:
        return str(error)
    return None


def _paths(value, prefix=()):
    yield prefix
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from _paths(child, (*prefix, key))


def _field(path) -> str:
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text


def _set(data, path, value=None, *, delete=False):
    data = copy.deepcopy(data)
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return data


@pytest.fixture(scope="module")
def base_manifests():
    return [json.loads(path.read_text()) for path in CONVERTED_MANIFESTS]


def test_published_file_is_the_schema_the_runtime_checks_with():
    assert schema_path().name == "artifact-1.schema.json"
    assert load_schema() == build_schema(), (
        "regenerate: python -c 'from vitedge.runtime.manifest_schema import write_schema_file; write_schema_file()'"
    )
    jsonschema.Draft202012Validator.check_schema(load_schema())


def test_the_wheel_ships_the_schema():
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"vitedge\.runtime"\s*=\s*\[[^]]*"schemas/\*\.json"', text)


def _schema_nodes(schema):
    yield schema
    for key, value in schema.items():
        if key in ("properties", "$defs"):
            for part in value.values():
                yield from _schema_nodes(part)
        elif key in ("items", "additionalProperties", "propertyNames", "if", "then") and isinstance(value, dict):
            yield from _schema_nodes(value)
        elif key == "allOf":
            for part in value:
                yield from _schema_nodes(part)


def test_schema_uses_only_what_the_runtime_checker_understands():
    nodes = list(_schema_nodes(load_schema()))
    assert len(nodes) > 50
    for node in nodes:
        assert set(node) <= KEYWORDS, set(node) - KEYWORDS
        if "pattern" in node or "propertyNames" in node:  # a pattern's error message is its description
            assert "description" in (node.get("propertyNames") or node)


def test_schema_enums_come_from_the_registries():
    properties = load_schema()["properties"]
    assert properties["format"]["enum"] == list(FORMATS)
    assert properties["source"]["properties"]["weights"]["enum"] == list(WEIGHT_KINDS)
    assert properties["preprocess"]["properties"]["resample"]["enum"] == list(RESAMPLE_FILTERS)
    assert properties["input"]["properties"]["layout"]["enum"] == list(LAYOUTS)


def test_a_converted_onnx_manifest_validates(tiny_artifact):
    data = json.loads((tiny_artifact / "manifest.json").read_text())
    REFERENCE.validate(data)
    assert _loader_verdict(data) is None


@pytest.mark.parametrize("path", CONVERTED_MANIFESTS + GOLDEN_MANIFESTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_converted_and_golden_manifests_validate(path):
    """The golden manifests are what the Kotlin and Swift cores' tests read: they follow the schema."""
    data = json.loads(path.read_text())
    REFERENCE.validate(data)
    assert _loader_verdict(data) is None


def test_converted_manifests_cover_every_format(tiny_artifact, base_manifests):
    formats = {data["format"] for data in base_manifests} | {read_manifest(tiny_artifact).format}
    assert formats == set(FORMATS)
    assert any(data["outputs"]["quantization"] for data in base_manifests)
    assert any(data["entry"] for data in base_manifests)


def test_schema_requires_what_the_kotlin_and_swift_cores_require():
    """The demos' cores refuse a manifest missing these fields and accept the rest: the schema agrees."""
    schema = load_schema()
    kotlin, swift = KOTLIN_MANIFEST.read_text(), SWIFT_MANIFEST.read_text()
    kotlin_required = re.search(r"val required = listOf\(([^)]*)\)", kotlin).group(1)
    swift_required = re.search(r"let required = \[([^]]*)\]", swift).group(1)
    for listed in (kotlin_required, swift_required):
        assert re.findall(r'"([^"]+)"', listed) == [name for name in schema["required"] if name != "schema"]
    kotlin_formats = re.search(r"val FORMATS = listOf\(([^)]*)\)", kotlin).group(1)
    swift_formats = re.search(r"static let formats = \[([^]]*)\]", swift).group(1)
    for listed in (kotlin_formats, swift_formats):
        assert re.findall(r'"([^"]+)"', listed) == schema["properties"]["format"]["enum"]
    swift_keys = re.search(r"knownKeys: Set<String> = \[([^]]*)\]", SWIFT_PREPROCESS.read_text()).group(1)
    assert set(re.findall(r'"([^"]+)"', swift_keys)) == set(schema["properties"]["preprocess"]["properties"])


def _mutations(data):
    """Every field deleted, nulled, of the wrong type, huge, negative, or a path out of the folder."""
    values = [None, True, "x", "", -3, 0, 1.5, 10**30, -(10**30), 1e300, [], [1], {}, {"bogus": 1}]
    for path in list(_paths(data))[1:]:
        yield path, _set(data, path, delete=True)
        for value in values:
            yield path, _set(data, path, value)
        if isinstance(path[-1], str) and path[-1] in ("path", "entry"):
            for attack in PATH_ATTACKS:
                yield path, _set(data, path, attack)
        if isinstance(_get(data, path), dict):
            yield (*path, "bogus"), _set(data, (*path, "bogus"), 1)


def test_loader_and_schema_agree_on_every_field_mutation(base_manifests):
    checked = rejected = 0
    for base in base_manifests:
        for path, mutated in _mutations(base):
            verdict = _loader_verdict(mutated)
            assert (verdict is None) == REFERENCE.is_valid(mutated), (_field(path), verdict)
            checked += 1
            if verdict is not None:
                rejected += 1
                assert "\n" not in verdict and str(path[0]) in verdict, (_field(path), verdict)
    assert checked > 3000 and rejected > checked // 2


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("input", "shape", 2), -3, r"manifest\.json: input\.shape\[2\]: expected a positive integer.*, got -3;"),
        (("files", 0, "path"), "../../etc/passwd", r"files\[0\]\.path: expected a relative path inside the artifact"),
        (("entry",), "/abs/model.mlpackage", r"entry: expected a relative path inside the artifact folder"),
        (("files", 0, "bytes"), 10**30, r"files\[0\]\.bytes: expected a file size in bytes \(>= 0\), got 1000"),
        (("source", "weights"), "imagined", r"source\.weights 'imagined' is not one of pretrained, finetuned"),
        (("labels",), {"x": "cat"}, r"labels: key 'x' is not a class index"),
        (("labels",), {"10000000": "cat"}, r"labels: key '10000000' is not a class index"),
        (("outputs", "quantization", "logits", "scale"), 0, r"outputs\.quantization\.logits\.scale: expected a positive"),
        (("preprocess", "size"), None, r"preprocess\.size: expected \[height, width\] \(resize_mode 'exact' needs size\)"),
        (("preprocess", "std", 1), 0.0, r"preprocess\.std\[1\]: expected a positive number"),
        (("input", "dtype"), 7, r"input\.dtype 7 is not one of float32"),
        (("validation", "top1_agreement"), 1.5, r"validation\.top1_agreement: expected a fraction from 0 to 1, got 1\.5"),
        (("conversion", "tools"), {"torch": 2}, r"conversion\.tools\.torch: expected a string, got 2"),
    ],
)
def test_errors_are_one_line_and_name_the_field(base_manifests, path, value, message):
    mutated = _set(base_manifests[-1], path, value)  # the tflite int8 one: quantized input and outputs
    verdict = _loader_verdict(mutated)
    assert verdict is not None and re.search(message, verdict), verdict
    assert "\n" not in verdict and verdict.endswith("malformed manifest: re-create the artifact with vitedge convert")
    assert not REFERENCE.is_valid(mutated)


def test_deleted_field_names_itself(base_manifests):
    verdict = _loader_verdict(_set(base_manifests[0], ("input", "dtype"), delete=True))
    assert verdict.startswith("manifest.json: input.dtype: missing")


def _json_values():
    leaves = (
        st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
        | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6)
        | st.sampled_from(PATH_ATTACKS + ("NCHW", "exact", "shortest_edge", "int8", "random-init", "onnx", "a" * 64))
    )
    return st.recursive(leaves, lambda children: st.lists(children, max_size=4)
                        | st.dictionaries(st.text(max_size=4), children, max_size=3), max_leaves=6)


@st.composite
def _fuzzed_manifest(draw, bases):
    data = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = list(_paths(data))[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            data = _set(data, path, delete=True)
            continue
        elsewhere = st.sampled_from([_get(data, other) for other in paths])  # a valid value, in the wrong place
        data = _set(data, path, draw(_json_values() | elsewhere))
    return data


def _get(data, path):
    for key in path:
        data = data[key]
    return data


_BASES = [json.loads(path.read_text()) for path in CONVERTED_MANIFESTS + GOLDEN_MANIFESTS[:2]]


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_fuzzed_manifest(_BASES))
def test_fuzzed_manifests_never_cause_an_internal_error(data):
    verdict = _loader_verdict(data)
    assert (verdict is None) == REFERENCE.is_valid(data), verdict
    assert verdict is None or "\n" not in verdict


@pytest.mark.parametrize(
    "text",
    ['{"schema": ' + "[" * 100_000 + "]" * 100_000 + "}", '{"schema": ' + "9" * 5000 + "}", "{ nope", "\xff\xfe",
     "null", "[]", '"vitedge.artifact/1"', '{"schema": "vitedge.artifact/1", "format": ["onnx"]}'],
    ids=["deep", "huge-number", "truncated", "not-utf8", "null", "list", "string", "format-list"],
)
def test_unreadable_manifest_text_is_an_artifact_error(tmp_path, text):
    (tmp_path / "manifest.json").write_bytes(text.encode("latin-1") if text == "\xff\xfe" else text.encode())
    with pytest.raises(ArtifactError) as error:
        read_manifest(tmp_path)
    assert "\n" not in str(error.value) and "manifest.json" in str(error.value)


def test_loader_and_schema_agree_on_the_selfcheck_block():
    """The self-check block (index + files with checksums) is checked like the model's files; old readers ignore it."""
    base = json.loads((ROOT / "demo_golden" / "selfcheck" / "vit_bilinear_nchw" / "manifest.json").read_text())
    assert base["selfcheck"]["index"] == "selfcheck/index.json" and REFERENCE.is_valid(base)
    checked = 0
    for path, mutated in _mutations(base):
        if path[0] != "selfcheck":
            continue
        verdict = _loader_verdict(mutated)
        assert (verdict is None) == REFERENCE.is_valid(mutated), (_field(path), verdict)
        checked += 1
    assert checked > 100
    verdict = _loader_verdict(_set(base, ("selfcheck", "files", 1, "sha256"), "xyz"))
    assert verdict and "selfcheck.files[1].sha256: expected 64 lowercase hex digits" in verdict
    verdict = _loader_verdict(_set(base, ("selfcheck", "index"), "../index.json"))
    assert verdict and "selfcheck.index: expected a relative path inside the artifact folder" in verdict
    assert _loader_verdict(_set(base, ("selfcheck",), None, delete=True)) is None  # an artifact made before self-checks
