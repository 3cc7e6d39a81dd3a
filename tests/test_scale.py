"""Bulk jobs (vitedge.scale): one row per image, errors only on bad images, resumable, the same on Ray."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.scale_helpers import BAD_NAMES, crashing_stage, failing_stage, write_images
from tests.test_runtime_isolation import BLOCKER
from vitedge.cli import main
from vitedge.errors import BackendUnavailableError, UsageError, VitedgeError
from vitedge.runtime import Classifier
from vitedge.scale import RayOptions, artifact_sha256, read_embeddings, read_job_table, run_job
from vitedge.scale.plan import make_plan
from vitedge.scale.shards import JOB_FILE
from vitedge.scale.sources import resolve_sources

SHARD = 5  # 23 images -> 5 shards


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("scale") / "photos")


@pytest.fixture(scope="module")
def reference(tiny_artifact, images, tmp_path_factory):
    """The local engine's job over ``images``: what every other run must equal."""
    out = tmp_path_factory.mktemp("scale-reference") / "job"
    run_job(tiny_artifact, images, out, shard_size=SHARD, top_k=2)
    return read_job_table(out)


def bad_paths(images) -> list[str]:
    return sorted(str(images / name) for name in BAD_NAMES)


def assert_same_rows(table: pa.Table, reference: pa.Table) -> None:
    """One row per image, the same paths and errors, embeddings within 1e-6, the same labels."""
    assert table.column("path").to_pylist() == reference.column("path").to_pylist()
    assert len(set(table.column("path").to_pylist())) == table.num_rows
    assert table.column("error").to_pylist() == reference.column("error").to_pylist()
    for got, want in zip(table.column("embedding").to_pylist(), reference.column("embedding").to_pylist()):
        assert (got is None) == (want is None)
        if got is not None:
            np.testing.assert_allclose(got, want, atol=1e-6)
    assert table.column("labels").to_pylist() == reference.column("labels").to_pylist()


# -- the local engine ----------------------------------------------------------------------------------


def test_local_job_has_one_row_per_image_errors_only_on_bad_images(tiny_artifact, images, reference):
    paths = reference.column("path").to_pylist()
    assert len(paths) == 23 and paths == sorted(paths) and all(os.path.isabs(path) for path in paths)
    errors = {path: error for path, error in zip(paths, reference.column("error").to_pylist()) if error}
    assert sorted(errors) == bad_paths(images)
    assert all(path in error for path, error in errors.items())
    assert set(reference.column("artifact_sha256").to_pylist()) == {artifact_sha256(tiny_artifact)}
    classifier = Classifier.open(tiny_artifact)
    good = [path for path in paths if path not in errors]
    table = reference.filter(reference.column("error").is_null())
    np.testing.assert_allclose(np.array(table.column("embedding").to_pylist()), classifier.embed(good).vectors, atol=1e-6)
    expected = [[p.label for p in result.predictions] for result in classifier.predict(good, top_k=2)]
    assert table.column("labels").to_pylist() == expected
    np.testing.assert_allclose(np.array(table.column("scores").to_pylist()),
                               [[p.score for p in result.predictions] for result in classifier.predict(good, top_k=2)], atol=1e-6)


def test_read_embeddings_gives_the_matrix_and_the_errors(tiny_artifact, images, tmp_path):
    out = tmp_path / "job"
    run_job(tiny_artifact, images, out, shard_size=SHARD)
    table = read_embeddings(out)
    assert table.vectors.shape == (20, 64) and table.vectors.dtype == np.float32 and len(table.paths) == 20
    np.testing.assert_allclose(np.linalg.norm(table.vectors, axis=1), 1, atol=1e-5)
    assert sorted(path for path, _ in table.errors) == bad_paths(images)
    assert table.artifact["sha256"] == artifact_sha256(tiny_artifact) and table.artifact["precision"] == "fp32"


def test_interrupted_job_resumes_without_loss_or_duplicates(tiny_artifact, images, reference, tmp_path):
    out = tmp_path / "job"
    written = []

    def interrupt_after_two(shard):
        written.append(shard.path)
        if len(written) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_job(tiny_artifact, images, out, shard_size=SHARD, top_k=2, on_shard=interrupt_after_two)
    assert sorted(out.glob("part-*.parquet")) == sorted(written)
    # a process killed while writing a shard leaves a hidden temporary file: never read, removed on the next run
    dead = f".part-{written[0].name}.{socket.gethostname()}-{2 ** 22 + 12345}.tmp"
    (out / dead).write_bytes(b"half a shard")
    result = run_job(tiny_artifact, images, out, shard_size=SHARD, top_k=2)
    assert (result.shards, result.shards_skipped, result.shards_written, result.errors) == (5, 2, 3, 3)
    assert not (out / dead).exists()
    assert_same_rows(read_job_table(out), reference)
    again = run_job(tiny_artifact, images, out, shard_size=SHARD, top_k=2)
    assert (again.shards_skipped, again.shards_written, again.errors) == (5, 0, 3)


def test_a_damaged_shard_is_written_again(tiny_artifact, images, reference, tmp_path):
    out = tmp_path / "job"
    run_job(tiny_artifact, images, out, shard_size=SHARD, top_k=2)
    shard = sorted(out.glob("part-*.parquet"))[1]
    shard.write_bytes(shard.read_bytes()[:50])
    result = run_job(tiny_artifact, images, out, shard_size=SHARD, top_k=2)
    assert (result.shards_skipped, result.shards_written) == (4, 1)
    assert_same_rows(read_job_table(out), reference)


def test_out_dir_of_another_job_is_refused_unless_overwrite(tiny_artifact, artifact_of, images, tmp_path):
    out = tmp_path / "job"
    run_job(tiny_artifact, images, out, shard_size=SHARD)
    int8 = artifact_of("onnx", "int8-dynamic")
    with pytest.raises(UsageError, match="another artifact.*fp32.*int8-dynamic.*--overwrite"):
        run_job(int8, images, out, shard_size=SHARD)
    with pytest.raises(UsageError, match="shard_size 5 then, 7 now"):
        run_job(tiny_artifact, images, out, shard_size=7)
    with pytest.raises(UsageError, match=r"other images \(23 then, 1 now\)"):
        run_job(tiny_artifact, images / "img000.png", out, shard_size=SHARD)
    result = run_job(int8, images, out, shard_size=SHARD, overwrite=True)
    assert result.shards_written == 5
    assert set(read_job_table(out).column("artifact_sha256").to_pylist()) == {artifact_sha256(int8)}


def test_a_folder_that_is_not_a_job_is_left_alone(tiny_artifact, images, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(UsageError, match="notes.txt|holds no vitedge job"):
            run_job(tiny_artifact, images, out, overwrite=overwrite)
    assert (out / "notes.txt").read_text() == "keep me" and not (out / JOB_FILE).exists()


def test_predict_job_has_labels_and_no_embeddings(tiny_artifact, images, tmp_path):
    run_job(tiny_artifact, images, tmp_path / "job", task="predict", top_k=3)
    table = read_job_table(tmp_path / "job")
    assert table.column_names == ["path", "labels", "label_indices", "scores", "artifact_sha256", "error"]
    ok = table.filter(table.column("error").is_null())
    assert all(len(labels) == 3 for labels in ok.column("labels").to_pylist())
    with pytest.raises(UsageError, match="predict job"):
        read_embeddings(tmp_path / "job")
    with pytest.raises(UsageError, match="top_k"):
        run_job(tiny_artifact, images, tmp_path / "other", task="predict", top_k=0)


# -- sources and the plan ------------------------------------------------------------------------------


def test_sources_folders_globs_lists_and_parquet_give_one_sorted_list(images, tmp_path):
    everything = resolve_sources([str(images)])
    assert len(everything) == 23 and everything == sorted(everything)
    jpgs = resolve_sources([str(images / "**" / "*.jpg")])
    assert jpgs == [path for path in everything if path.endswith(".jpg")]
    listing = tmp_path / "list.txt"
    listing.write_text(f"# my images\n{images / 'img000.png'}\n\n{os.path.relpath(images / 'sub' / 'img001.jpg', tmp_path)}\n")
    table = tmp_path / "paths.parquet"
    pq.write_table(pa.table({"path": [str(images / "img000.png"), str(images / "img003.jpg")]}), table)
    assert resolve_sources([str(listing), str(table)]) == sorted(
        {str(images / "img000.png"), str(images / "sub" / "img001.jpg"), str(images / "img003.jpg")})
    with pytest.raises(UsageError, match="no such file"):
        resolve_sources([str(tmp_path / "missing")])
    with pytest.raises(UsageError, match="no images found"):
        resolve_sources([str(tmp_path / "*.webp")])
    pq.write_table(pa.table({"name": ["a"]}), tmp_path / "bad.parquet")
    with pytest.raises(UsageError, match="no path / uri / image column"):
        resolve_sources([str(tmp_path / "bad.parquet")])


def test_uris_are_listed_and_read_through_pyarrow_filesystems(tiny_artifact, images, tmp_path):
    """An object store stands in as pyarrow's in-memory mock filesystem (cached per process, like S3's)."""
    from vitedge.scale.sources import _filesystem

    mock = _filesystem("mock://")[0]
    mock.create_dir("bucket/photos")
    for name in ("a.png", "b.jpg"):
        with mock.open_output_stream(f"bucket/photos/{name}") as stream:
            stream.write((images / ("img000.png" if name == "a.png" else "img003.jpg")).read_bytes())
    with mock.open_output_stream("bucket/photos/c.png") as stream:
        stream.write(b"broken")
    assert resolve_sources(["mock:///bucket/photos/"]) == [f"mock:///bucket/photos/{n}" for n in ("a.png", "b.jpg", "c.png")]
    assert resolve_sources(["mock:///bucket/photos/*.jpg"]) == ["mock:///bucket/photos/b.jpg"]
    run_job(tiny_artifact, "mock:///bucket/photos/", tmp_path / "job")
    table = read_job_table(tmp_path / "job")
    errors = table.column("error").to_pylist()
    assert errors[:2] == [None, None] and errors[2].startswith("mock:///bucket/photos/c.png: ")
    classifier = Classifier.open(tiny_artifact)
    np.testing.assert_allclose(table.column("embedding").to_pylist()[0], classifier.embed(str(images / "img000.png")), atol=1e-6)


def test_plan_is_deterministic_and_named_by_content():
    paths = [f"/data/{i:03d}.jpg" for i in range(10)]
    plan = make_plan(paths, 4)
    assert [len(chunk) for chunk in plan.chunks] == [4, 4, 2]
    assert [chunk.shard_name for chunk in plan.chunks] == [chunk.shard_name for chunk in make_plan(list(paths), 4).chunks]
    assert plan.chunks[0].shard_name.startswith("part-00000-")
    assert make_plan(paths[:9], 4).chunks[2].digest != plan.chunks[2].digest
    with pytest.raises(UsageError, match="sorted"):
        make_plan(list(reversed(paths)), 4)


# -- the CLI -------------------------------------------------------------------------------------------


def run(capsys, *argv):
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_embed_into_a_folder_and_resume(capsys, tiny_artifact, images, tmp_path):
    out = tmp_path / "emb"
    code, stdout, stderr = run(capsys, "embed", tiny_artifact, images, "--out", out, "--shard-size", 10, "--top-k", 1)
    assert code == 1, "unreadable images make the exit code 1, as for predict"
    assert f"wrote {out}: 23 rows in 3 shard(s)" in stdout and "3 unreadable" in stdout
    assert stderr.count("ERROR ") == 3 and "Traceback" not in stderr
    code, stdout, _ = run(capsys, "embed", tiny_artifact, images, "--out", out, "--shard-size", 10, "--top-k", 1)
    assert "(3 already there)" in stdout
    assert read_job_table(out).column_names[:3] == ["path", "embedding", "labels"]


def test_cli_predict_into_a_folder(capsys, tiny_artifact, images, tmp_path):
    code, stdout, _ = run(capsys, "predict", tiny_artifact, images, "--out", tmp_path / "pred", "--top-k", 2)
    assert code == 1 and "23 rows" in stdout
    assert read_job_table(tmp_path / "pred").num_rows == 23


def test_cli_npy_form_still_works_and_records_the_artifact(capsys, tiny_artifact, images, tmp_path):
    code, stdout, _ = run(capsys, "embed", tiny_artifact, images, "--out", tmp_path / "e.npy")
    assert code == 1 and np.load(tmp_path / "e.npy").shape == (20, 64)
    assert json.loads((tmp_path / "e.json").read_text())["artifact_sha256"] == artifact_sha256(tiny_artifact)


@pytest.mark.parametrize(("argv", "message"), [
    (["embed", "{art}", "{img}", "--out", "{tmp}/e.npy", "--engine", "local"], "--out must be a folder"),
    (["embed", "{art}", "{img}", "--out", "{tmp}/e.npy", "--top-k", "2"], "--top-k goes with --out DIR"),
    (["embed", "{art}", "{img}", "--out", "{tmp}/d", "--workers", "2"], "--workers goes with --engine ray"),
    (["predict", "{art}", "{img}", "--engine", "local"], "--out must be a folder"),
    (["predict", "{art}", "{img}", "--out", "{tmp}/d", "--json"], "--json and --watch print results"),
    (["embed", "{art}", "{img}", "--out", "{tmp}/d", "--engine", "ray", "--address", "ray://127.0.0.1:1"],
     "cannot reach Ray at ray://127.0.0.1:1"),
    (["embed", "{art}", "{img}", "--out", "{tmp}/d", "--engine", "ray", "--address", "not-an-address"],
     "expected auto, HOST:PORT or ray://HOST:PORT"),
])
def test_cli_bad_job_options_are_one_line(capsys, tiny_artifact, images, tmp_path, argv, message):
    argv = [arg.format(art=tiny_artifact, img=images, tmp=tmp_path) for arg in argv]
    code, _, stderr = run(capsys, *argv)
    assert code != 0 and message in stderr
    assert stderr.count("\n") <= 2 and stderr.startswith(("vitedge: error:", "vitedge: embed", "vitedge: predict"))
    assert "Traceback" not in stderr


def test_ray_not_installed_says_the_pip_command(capsys, tiny_artifact, images, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'vitedge\[scale\]'"):
        run_job(tiny_artifact, images, tmp_path / "job", engine="ray")
    code, _, stderr = run(capsys, "embed", tiny_artifact, images, "--out", tmp_path / "job2", "--engine", "ray")
    assert code == 1 and "pip install 'vitedge[scale]'" in stderr.splitlines()[-1]


def test_local_jobs_and_search_run_with_torch_blocked(tiny_artifact, images, tmp_path):
    script = BLOCKER + textwrap.dedent(f"""
        import sys
        from vitedge.scale import run_job
        from vitedge.search import build_index
        from vitedge.runtime import Classifier
        run_job({str(tiny_artifact)!r}, {str(images)!r}, {str(tmp_path / 'job')!r})
        index = build_index({str(tmp_path / 'job')!r}, {str(tmp_path / 'index')!r}, kind="hnsw")
        hits = index.search_images([{str(images / 'img000.png')!r}], Classifier.open({str(tiny_artifact)!r}), k=3)
        assert hits[0][0].path.endswith("img000.png"), hits
        assert not any(m.split(".")[0] in ("torch", "transformers") for m in sys.modules), "heavy module imported"
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr


# -- the Ray engine (a local Ray with 2 CPUs) --------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_job_equals_the_local_engine_with_errors_only_on_bad_images(local_ray, tiny_artifact, images, reference, tmp_path):
    result = run_job(tiny_artifact, images, tmp_path / "job", engine="ray", shard_size=SHARD, top_k=2,
                     ray=RayOptions(workers=2))
    assert (result.shards_written, result.errors) == (5, 3)
    assert_same_rows(read_job_table(tmp_path / "job"), reference)


@pytest.mark.slow
def test_ray_retries_the_work_of_a_killed_worker(local_ray, tiny_artifact, images, reference, tmp_path):
    marker = tmp_path / "kill-a-worker"
    marker.touch()
    result = run_job(tiny_artifact, images, tmp_path / "job", engine="ray", shard_size=SHARD, top_k=2,
                     ray=RayOptions(workers=2), stage_class=crashing_stage(marker))
    assert not marker.exists(), "no worker died: the test tested nothing"
    assert result.shards_written == 5
    assert_same_rows(read_job_table(tmp_path / "job"), reference)


@pytest.mark.slow
def test_ray_job_interrupted_then_resumed(local_ray, tiny_artifact, images, reference, tmp_path):
    def interrupt(shard):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_job(tiny_artifact, images, tmp_path / "job", engine="ray", shard_size=SHARD, top_k=2,
                ray=RayOptions(workers=2), on_shard=interrupt)
    assert len(list((tmp_path / "job").glob("part-*.parquet"))) == 1
    result = run_job(tiny_artifact, images, tmp_path / "job", engine="ray", shard_size=SHARD, top_k=2,
                     ray=RayOptions(workers=2))
    assert (result.shards_skipped, result.shards_written) == (1, 4)
    assert_same_rows(read_job_table(tmp_path / "job"), reference)


@pytest.mark.slow
def test_a_worker_that_cannot_start_is_one_clear_error(local_ray, tiny_artifact, images, tmp_path):
    with pytest.raises(VitedgeError, match="a Ray worker could not start: onnxruntime missing here; pip install"):
        run_job(tiny_artifact, images, tmp_path / "job", engine="ray", ray=RayOptions(workers=1),
                stage_class=failing_stage("onnxruntime missing here"))


@pytest.mark.slow
def test_cli_embed_on_ray(capsys, local_ray, tiny_artifact, images, reference, tmp_path):
    code, stdout, stderr = run(capsys, "embed", tiny_artifact, images, "--out", tmp_path / "job", "--engine", "ray",
                               "--workers", 2, "--shard-size", SHARD, "--top-k", 2)
    assert code == 1 and "23 rows in 5 shard(s), ray engine" in stdout and stderr.count("ERROR ") == 3
    assert_same_rows(read_job_table(tmp_path / "job"), reference)


def test_the_readme_commands_of_bulk_jobs_and_search_parse():
    """Every `vitedge embed|predict|index|search` line of the README's section is a valid command line."""
    import shlex
    from pathlib import Path

    from vitedge.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Many images:", 1)[1].split("\n## ", 1)[0]
    commands = [shlex.split(line, comments=True) for line in section.splitlines()
                if line.startswith(("vitedge embed", "vitedge predict", "vitedge index", "vitedge search"))]
    assert len(commands) >= 7
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args(argv[1:])
        assert args.command in ("embed", "predict", "index", "search")
