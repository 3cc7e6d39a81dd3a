"""The artifact contract: manifests round-trip, are validated on load, and guard their files."""

from __future__ import annotations

import json
import shutil

import pytest

from vitedge.errors import ArtifactError
from vitedge.runtime.manifest import (
    WEIGHT_KINDS,
    Manifest,
    SourceInfo,
    load_schema,
    read_manifest,
    schema_path,
    verify_files,
)


@pytest.fixture
def artifact_copy(tiny_artifact, tmp_path):
    return shutil.copytree(tiny_artifact, tmp_path / "copy")


def _edit_manifest(folder, change):
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_round_trip(tiny_artifact):
    manifest = read_manifest(tiny_artifact)
    assert Manifest.from_dict(json.loads(json.dumps(manifest.to_dict()))) == manifest
    assert Manifest.from_dict(manifest.to_dict()) == manifest  # tuples and all, without the JSON detour


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(schema="vitedge.artifact/99"), "newer than this vitedge.*upgrade"),
        (lambda d: d.update(schema="someone.else/1"), "unknown manifest schema"),
        (lambda d: d.pop("schema"), "no 'schema' field"),
        (lambda d: d.update(format="safetensors"), "unknown format 'safetensors'"),
        (lambda d: d.pop("labels"), "missing fields labels"),
        (lambda d: d["input"].update(layout=None, bogus=1), "malformed"),
        (lambda d: d["preprocess"].update(resample="magic"), "resample 'magic'"),
        (lambda d: d["input"]["shape"].__setitem__(2, -3), r"json: input\.shape\[2\]: expected a positive integer.*got -3"),
        (lambda d: d["files"][0].update(path="../../model.onnx"), r"files\[0\]\.path: expected a relative path inside"),
        (lambda d: d["source"].update(weights="imagined"), "source.weights 'imagined' is not one of pretrained"),
        (lambda d: d["outputs"].pop("logits"), "outputs.logits: missing"),
        (lambda d: d.update(format=["onnx"]), r"unknown format \['onnx'\]"),
    ],
)
def test_bad_manifests_are_refused_clearly(artifact_copy, change, message):
    _edit_manifest(artifact_copy, change)
    with pytest.raises(ArtifactError, match=message):
        read_manifest(artifact_copy)


def test_source_weights_are_one_of_the_known_kinds():
    assert SourceInfo(model="m", weights="random-init").weights in WEIGHT_KINDS
    with pytest.raises(ValueError, match="weights 'imagined' is not one of"):
        SourceInfo(model="m", weights="imagined")


def test_the_schema_file_ships_beside_the_loader():
    assert schema_path().is_file() and load_schema()["properties"]["schema"]["pattern"].startswith("^vitedge")


def test_not_json(artifact_copy):
    (artifact_copy / "manifest.json").write_text("{ nope")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_manifest(artifact_copy)


def test_missing_folder_and_missing_manifest(tmp_path):
    with pytest.raises(ArtifactError, match="no such artifact folder"):
        read_manifest(tmp_path / "nope")
    with pytest.raises(ArtifactError, match="manifest.json: missing"):
        read_manifest(tmp_path)


def test_tampered_truncated_and_missing_model_files(artifact_copy):
    manifest = read_manifest(artifact_copy)
    model = artifact_copy / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256 checksum mismatch"):
        verify_files(artifact_copy, manifest)
    verify_files(artifact_copy, manifest, checksums=False)  # same size: only the hash can tell
    model.write_bytes(bytes(data[:-10]))
    with pytest.raises(ArtifactError, match="size .* differs"):
        verify_files(artifact_copy, manifest, checksums=False)
    model.unlink()
    with pytest.raises(ArtifactError, match="model file missing"):
        verify_files(artifact_copy, manifest)
