"""`vitedge predict --watch DIR`: the folder watcher (fake clock), the watch loop, and the CLI end to end."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import DATA, TINY_LABELS
from vitedge.cli import main
from vitedge.errors import UsageError
from vitedge.runtime import Classifier
from vitedge.runtime.watch import FolderWatcher, WatchSummary, is_candidate, watch


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = 1.0) -> None:
        self.now += seconds


def png_bytes(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def write(path: Path, data: bytes, *, mtime_ns: int | None = None) -> Path:
    path.write_bytes(data)
    if mtime_ns is not None:  # distinct versions even where the file system's clock is coarse
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


@pytest.fixture(scope="module")
def clf(tiny_artifact) -> Classifier:
    return Classifier.open(tiny_artifact, num_threads=1)


# -- the watcher ------------------------------------------------------------------------------


def test_a_new_file_is_ready_once_it_has_settled_and_is_returned_once(tmp_path):
    clock = FakeClock()
    watcher = FolderWatcher(tmp_path, settle=1.0, clock=clock)
    assert watcher.poll() == []
    image = write(tmp_path / "cat.png", png_bytes())
    assert watcher.poll() == []  # just seen: it may still be growing
    clock.advance(0.5)
    assert watcher.poll() == []
    clock.advance(0.5)
    assert watcher.poll() == [str(image)]
    clock.advance(5)
    assert watcher.poll() == []


def test_images_already_there_are_skipped_unless_asked_for(tmp_path):
    old = write(tmp_path / "old.png", png_bytes())
    clock = FakeClock()
    skipping = FolderWatcher(tmp_path, settle=0, clock=clock)
    assert skipping.poll() == []
    including = FolderWatcher(tmp_path, settle=0, clock=clock, include_existing=True)
    assert including.poll() == [str(old)]


def test_a_growing_file_waits_until_its_size_and_time_stop_changing(tmp_path):
    clock = FakeClock()
    watcher = FolderWatcher(tmp_path, settle=1.0, clock=clock)
    watcher.poll()
    data = png_bytes(size=(300, 200))
    path = tmp_path / "big.png"
    for step, end in enumerate((10, len(data) // 3, len(data) // 2)):
        write(path, data[:end], mtime_ns=10**18 + step)
        assert watcher.poll() == []
        clock.advance(0.9)
    write(path, data, mtime_ns=10**18 + 9)
    assert watcher.poll() == []
    clock.advance(1.0)
    assert watcher.poll() == [str(path)]


def test_empty_files_wait_and_rewritten_or_recreated_files_come_again(tmp_path):
    clock = FakeClock()
    watcher = FolderWatcher(tmp_path, settle=0, clock=clock)
    watcher.poll()
    path = write(tmp_path / "a.png", b"", mtime_ns=10**18)
    assert watcher.poll() == []  # 0 bytes: a writer has only just created it
    write(path, png_bytes(), mtime_ns=10**18 + 1)
    assert watcher.poll() == [str(path)]
    write(path, png_bytes((0, 0, 255)), mtime_ns=10**18 + 2)
    assert watcher.poll() == [str(path)]
    path.unlink()
    assert watcher.poll() == []
    write(path, png_bytes((0, 0, 255)), mtime_ns=10**18 + 2)
    assert watcher.poll() == [str(path)]


def test_hidden_temporary_and_non_image_files_and_subfolders_are_ignored(tmp_path):
    clock = FakeClock()
    flat = FolderWatcher(tmp_path, settle=0, clock=clock)
    deep = FolderWatcher(tmp_path, settle=0, clock=clock, recursive=True)
    flat.poll(), deep.poll()
    for name in (".hidden.png", "cat.png.part", "cat.jpg.tmp", "dl.jpg.crdownload", "notes.txt", "cat.png~", "x.PNG"):
        write(tmp_path / name, png_bytes())
    (tmp_path / "sub").mkdir()
    (tmp_path / ".cache").mkdir()
    write(tmp_path / "sub" / "dog.jpg", png_bytes())
    write(tmp_path / ".cache" / "thumb.jpg", png_bytes())
    assert flat.poll() == [str(tmp_path / "x.PNG")]
    assert sorted(deep.poll()) == [str(tmp_path / "sub" / "dog.jpg"), str(tmp_path / "x.PNG")]
    assert is_candidate("photo.JPEG") and not is_candidate("photo.jpeg.partial")


def test_ready_files_come_oldest_first(tmp_path):
    clock = FakeClock()
    watcher = FolderWatcher(tmp_path, settle=0, clock=clock)
    watcher.poll()
    write(tmp_path / "b.png", png_bytes(), mtime_ns=10**18)
    write(tmp_path / "a.png", png_bytes(), mtime_ns=10**18 + 5)
    write(tmp_path / "c.png", png_bytes(), mtime_ns=10**18 + 1)
    assert [Path(p).name for p in watcher.poll()] == ["b.png", "c.png", "a.png"]


def test_a_missing_folder_or_a_removed_one_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="not a folder"):
        FolderWatcher(tmp_path / "nope")
    folder = tmp_path / "gone"
    folder.mkdir()
    watcher = FolderWatcher(folder)
    folder.rmdir()
    with pytest.raises(Exception, match="watched folder was removed"):
        watcher.poll()


# -- the watch loop -------------------------------------------------------------------------


class Script:
    """A fake sleep: each call advances the fake clock and runs the next step; then Ctrl-C."""

    def __init__(self, clock: FakeClock, steps) -> None:
        self.clock, self.steps = clock, list(steps)

    def __call__(self, seconds: float) -> None:
        self.clock.advance(seconds)
        if not self.steps:
            raise KeyboardInterrupt
        self.steps.pop(0)()


def run_watch(clf, folder: Path, steps, *, predict=None, include_existing=False, batch_size=8):
    clock = FakeClock()
    watcher = FolderWatcher(folder, settle=1.0, clock=clock, include_existing=include_existing)
    summary = WatchSummary(started_at=clock())
    results = []
    with pytest.raises(KeyboardInterrupt):
        for result in watch(predict or partial(clf.predict, top_k=2), watcher, interval=1.0, batch_size=batch_size,
                            summary=summary, sleep=Script(clock, steps)):
            results.append(result)
    return results, summary


def test_watch_classifies_arrivals_reports_corrupt_files_and_goes_on(clf, tmp_path):
    photo = DATA / "astronaut.jpg"
    data = png_bytes(size=(120, 90))
    half = tmp_path / "b_half.png"
    steps = [
        lambda: write(tmp_path / "a.jpg", photo.read_bytes()),
        lambda: write(half, data[: len(data) // 2], mtime_ns=10**18),
        lambda: (write(half, data, mtime_ns=10**18 + 1),  # it grew before it settled
                 write(tmp_path / "c_corrupt.jpg", b"\xff\xd8\xff\xe0 not a jpeg at all")),
        lambda: write(tmp_path / "notes.txt", b"ignored"),
        lambda: None,
        lambda: None,
    ]
    results, summary = run_watch(clf, tmp_path, steps, batch_size=1)
    by_name = {Path(r.image).name: r for r in results}
    assert list(by_name) == ["a.jpg", "b_half.png", "c_corrupt.jpg"]
    assert by_name["a.jpg"].predictions[0].label in TINY_LABELS and len(by_name["a.jpg"].predictions) == 2
    assert by_name["a.jpg"].predictions == clf.predict(str(tmp_path / "a.jpg"), top_k=2).predictions
    assert "c_corrupt.jpg" in by_name["c_corrupt.jpg"].error and "\n" not in by_name["c_corrupt.jpg"].error
    assert by_name["b_half.png"].ok  # never read while half written
    assert (summary.classified, summary.failed, summary.removed) == (2, 1, 0)
    assert summary.text("inbox", now=summary.started_at + 8) == "watched inbox for 8 s: 2 classified, 1 unreadable"


def test_a_file_removed_before_it_is_read_is_skipped_and_counted(clf, tmp_path):
    doomed = tmp_path / "doomed.png"

    def predict(paths):
        if doomed.exists():
            doomed.unlink()  # removed between the poll and the read
        return clf.predict(list(paths), top_k=1)

    steps = [lambda: write(doomed, png_bytes()), lambda: None, lambda: write(tmp_path / "kept.png", png_bytes()),
             lambda: None, lambda: None]
    results, summary = run_watch(clf, tmp_path, steps, predict=predict)
    assert [Path(r.image).name for r in results] == ["kept.png"]
    assert (summary.classified, summary.failed, summary.removed) == (1, 0, 1)
    assert "1 removed before they could be read" in summary.text("x", now=summary.started_at)


def test_a_file_that_changes_while_being_read_is_read_again(clf, tmp_path):
    path = tmp_path / "growing.png"
    reads = []

    def predict(paths):
        results = clf.predict(list(paths), top_k=1)
        reads.append([Path(p).name for p in paths])
        if len(reads) == 1:  # the writer had paused; it goes on while we read
            write(path, png_bytes((0, 255, 0), size=(64, 64)), mtime_ns=10**18 + 1)
        return results

    steps = [lambda: write(path, png_bytes(), mtime_ns=10**18)] + [lambda: None] * 4
    results, summary = run_watch(clf, tmp_path, steps, predict=predict)
    assert reads == [["growing.png"], ["growing.png"]]
    assert len(results) == 1 and summary.retried == 1 and summary.classified == 1


def test_existing_images_first_when_asked(clf, tmp_path):
    write(tmp_path / "old.png", png_bytes())
    results, _ = run_watch(clf, tmp_path, [lambda: None], include_existing=True)
    assert [Path(r.image).name for r in results] == ["old.png"]


# -- the CLI -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "needs images or folders, or --watch DIR"),
        (["--existing", "x.jpg"], "--existing goes with --watch DIR"),
        (["x.jpg", "--watch", "{dir}"], "takes no image arguments"),
        (["--watch", "{dir}/nope"], "not a folder"),
        (["--watch", "{dir}", "--interval", "0"], "--interval must be more than 0"),
        (["x.jpg", "--threads", "0"], "--threads must be a whole number of threads"),
    ],
)
def test_predict_usage_mistakes_are_one_line_errors(argv, message, tiny_artifact, tmp_path, capsys):
    argv = [arg.replace("{dir}", str(tmp_path)) for arg in argv]
    assert main(["predict", str(tiny_artifact), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_threads_reach_onnxruntime_from_the_option_or_the_environment(tiny_artifact, monkeypatch, capsys):
    from vitedge import cli

    opened = []
    real_open = Classifier.open
    monkeypatch.setattr(Classifier, "open", lambda *a, **k: opened.append(real_open(*a, **k)) or opened[-1])
    image = str(DATA / "coffee.png")
    assert cli.main(["predict", str(tiny_artifact), image, "--threads", "3"]) == 0
    monkeypatch.setenv("VITEDGE_THREADS", "2")
    assert cli.main(["predict", str(tiny_artifact), image]) == 0
    threads = [c.backend._session.get_session_options().intra_op_num_threads for c in opened]
    assert threads == [3, 2]
    monkeypatch.setenv("VITEDGE_THREADS", "four")
    assert cli.main(["predict", str(tiny_artifact), image]) == 2
    assert "VITEDGE_THREADS must be a whole number" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_watch_prints_json_lines_and_stops_cleanly_on_ctrl_c(tiny_artifact, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write(inbox / "already.png", png_bytes())
    process = subprocess.Popen(
        [sys.executable, "-m", "vitedge.cli", "predict", str(tiny_artifact), "--watch", str(inbox),
         "--interval", "0.1", "--json", "--top-k", "3", "--existing", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # as from a terminal: a runner started in the background (`cmd &` in a script) ignores SIGINT, and
        # its children inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        first = json.loads(process.stdout.readline())  # blocks until the first image is classified
        (inbox / "new.jpg.part").write_bytes((DATA / "astronaut.jpg").read_bytes())
        (inbox / "new.jpg.part").rename(inbox / "new.jpg")  # how a downloader finishes a file
        second = json.loads(process.stdout.readline())
        write(inbox / "broken.png", b"\x89PNG\r\n\x1a\n truncated")
        third = json.loads(process.stdout.readline())
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert out == ""
    assert Path(first["image"]).name == "already.png" and len(first["predictions"]) == 3
    assert Path(second["image"]).name == "new.jpg" and second["predictions"][0]["label"] in TINY_LABELS
    assert Path(third["image"]).name == "broken.png" and "broken.png" in third["error"]
    assert "watching" in err and "2 classified, 1 unreadable" in err and "Traceback" not in err


def test_watch_and_camera_modules_import_nothing_heavy():
    from tests.test_runtime_isolation import BLOCKER

    script = BLOCKER + (
        "import sys, vitedge.runtime.watch, vitedge.runtime.camera, vitedge.cli\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'jax', 'tensorflow')]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
