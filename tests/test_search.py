"""Similarity search (vitedge.search): build, persist, search by vector and by image, refuse other artifacts."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from tests.scale_helpers import write_images
from vitedge.cli import main
from vitedge.errors import BackendUnavailableError, UsageError
from vitedge.runtime import Classifier
from vitedge.scale import read_embeddings, run_job
from vitedge.search import ArtifactMismatchError, IndexParams, build_index, open_index


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("search") / "photos", count=80, seed=1)


@pytest.fixture(scope="module")
def job(tiny_artifact, images, tmp_path_factory):
    out = tmp_path_factory.mktemp("search-job") / "embeddings"
    run_job(tiny_artifact, images, out)
    return out


@pytest.fixture(scope="module")
def int8_job(artifact_of, images, tmp_path_factory):
    out = tmp_path_factory.mktemp("search-job-int8") / "embeddings"
    run_job(artifact_of("onnx", "int8-dynamic"), images, out)
    return out


def exact_neighbours(vectors: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(vectors @ vectors.T), axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf-pq"])
def test_each_kind_builds_persists_and_finds_neighbours(job, tmp_path, kind):
    table = read_embeddings(job)
    index = build_index(job, tmp_path / "index", kind=kind)
    assert len(index) == 80 and index.dimension == 64 and index.params.kind == kind
    reopened = open_index(tmp_path / "index")
    hits = reopened.search(table.vectors, k=5)
    assert hits == index.search(table.vectors, k=5), "the saved index answers as the built one"
    assert all(len(row) == 5 and [h.rank for h in row] == [1, 2, 3, 4, 5] for row in hits)
    assert all(row[0].score >= row[-1].score for row in hits), "cosine: best (highest) first"
    found = [[table.paths.index(h.path) for h in row] for row in hits]
    exact = exact_neighbours(table.vectors, 5)
    recall = np.mean([len(set(f) & set(e)) / 5 for f, e in zip(found, exact)])
    if kind == "flat":
        assert recall == 1.0 and all(row[0].path == path for row, path in zip(hits, table.paths))
        np.testing.assert_allclose([row[0].score for row in hits], 1, atol=1e-5)
    else:
        assert recall > 0.5, f"{kind} recall@5 against exact search: {recall}"


def test_search_by_image_with_the_artifact_that_made_the_index(job, tiny_artifact, images, tmp_path):
    index = build_index(job, tmp_path / "index")
    hits = index.search_images([str(images / "img000.png")], Classifier.open(tiny_artifact), k=3)
    assert hits[0][0].path == str(images / "img000.png") and hits[0][0].score == pytest.approx(1, abs=1e-5)


def test_queries_and_inputs_of_another_artifact_are_refused(job, int8_job, artifact_of, images, tmp_path):
    index = build_index(job, tmp_path / "index")
    with pytest.raises(ArtifactMismatchError, match="onnx fp32 artifact.*int8-dynamic artifact"):
        index.search_images([str(images / "img000.png")], Classifier.open(artifact_of("onnx", "int8-dynamic")))
    with pytest.raises(ArtifactMismatchError, match="one index takes one artifact's vectors"):
        build_index([job, int8_job], tmp_path / "mixed")
    with pytest.raises(UsageError, match="do not fit this index of 64-dimensional"):
        index.search(np.zeros((2, 32), np.float32))


def test_cli_index_build_and_search(capsys, job, tiny_artifact, artifact_of, images, tmp_path):
    code = main(["index", "build", str(job), "--out", str(tmp_path / "index"), "--kind", "hnsw"])
    out, _ = capsys.readouterr()
    assert code == 0 and "80 vectors of 64 dimensions, hnsw" in out and "onnx fp32" in out
    code = main(["search", str(tmp_path / "index"), "--image", str(images / "img000.png"), "--artifact", str(tiny_artifact),
                 "--k", "4", "--json"])
    out, _ = capsys.readouterr()
    result = json.loads(out)
    assert code == 0 and result[0]["query"] == str(images / "img000.png") and len(result[0]["results"]) == 4
    assert set(result[0]["results"][0]) == {"rank", "path", "score"}
    code = main(["search", str(tmp_path / "index"), "--image", str(images / "img000.png"),
                 "--artifact", str(artifact_of("onnx", "int8-dynamic"))])
    _, err = capsys.readouterr()
    assert code == 1 and len(err.strip().splitlines()) == 1 and "not comparable" in err
    code = main(["index", "build", str(job), "--out", str(tmp_path / "index")])
    _, err = capsys.readouterr()
    assert code == 2 and "already exists" in err and "--overwrite" in err


def test_cli_search_by_vector_file_checks_its_artifact(capsys, job, int8_job, tiny_artifact, images, tmp_path):
    main(["index", "build", str(job), "--out", str(tmp_path / "index")])
    main(["embed", str(tiny_artifact), str(images / "img000.png"), "--out", str(tmp_path / "q.npy")])
    capsys.readouterr()
    code = main(["search", str(tmp_path / "index"), "--vector", str(tmp_path / "q.npy"), "--k", "2"])
    out, _ = capsys.readouterr()
    assert code == 0 and out.splitlines()[1].endswith("img000.png")
    sidecar = json.loads((tmp_path / "q.json").read_text())
    sidecar["artifact_sha256"] = read_embeddings(int8_job).artifact["sha256"]
    (tmp_path / "q.json").write_text(json.dumps(sidecar))
    code = main(["search", str(tmp_path / "index"), "--vector", str(tmp_path / "q.npy")])
    _, err = capsys.readouterr()
    assert code == 1 and "not comparable" in err
    code = main(["search", str(tmp_path / "index"), "--image", str(images / "img000.png")])
    _, err = capsys.readouterr()
    assert code == 2 and "--artifact" in err


def test_index_from_an_npy_file(capsys, tiny_artifact, images, tmp_path):
    main(["embed", str(tiny_artifact), str(images), "--out", str(tmp_path / "e.npy")])
    capsys.readouterr()
    index = build_index(tmp_path / "e.npy", tmp_path / "index")
    assert len(index) == 80 and index.artifact["precision"] == "fp32"


def test_bad_inputs(job, tmp_path, monkeypatch):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(job, unfinished)
    next(unfinished.glob("part-*.parquet")).unlink()
    with pytest.raises(UsageError, match="not finished"):
        build_index(unfinished, tmp_path / "index")
    with pytest.raises(UsageError, match="not a vitedge job folder"):
        build_index(tmp_path, tmp_path / "index")
    with pytest.raises(UsageError, match="needs at least"):
        IndexParams(kind="ivf-pq", nlist=64).resolved(40, 64)
    with pytest.raises(UsageError, match="did you mean 'hnsw'"):
        IndexParams(kind="hnws")
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'vitedge\[search\]'"):
        build_index(job, tmp_path / "index")
