"""Camera frames -> predictions, with a fake picamera2 module (`vitedge camera` and examples/pi_camera.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import DATA, TINY_LABELS
from vitedge.cli import main
from vitedge.runtime import Classifier
from vitedge.runtime.camera import (
    CameraUnavailableError,
    FrameResult,
    classify_frames,
    frame_line,
    open_picamera2,
    parse_size,
    picamera2_frames,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pi_camera.py"


def rgb_photo(size=(640, 480)) -> np.ndarray:
    return np.asarray(Image.open(DATA / "astronaut.jpg").convert("RGB").resize(size))


class FakePicamera2:
    """What the tests need of picamera2.Picamera2: configure, start, capture_array (XBGR8888), close."""

    instances: list[FakePicamera2] = []

    def __init__(self, camera_num: int = 0, *, interrupt_after: int | None = None) -> None:
        self.camera_num, self.config, self.started, self.closed, self.captured = camera_num, None, False, False, 0
        self.interrupt_after = interrupt_after
        FakePicamera2.instances.append(self)

    def create_preview_configuration(self, main=None, **kwargs):
        return {"main": dict(main or {}), "kind": "preview"}

    def configure(self, config) -> None:
        self.config = config

    def start(self) -> None:
        self.started = True

    def capture_array(self, name: str = "main") -> np.ndarray:
        assert self.started and self.config["main"]["format"] == "XBGR8888"
        if self.interrupt_after is not None and self.captured >= self.interrupt_after:
            raise KeyboardInterrupt
        self.captured += 1
        rgb = rgb_photo(self.config["main"]["size"])
        return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])  # R, G, B, X

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_picamera2(monkeypatch):
    FakePicamera2.instances = []
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return module


@pytest.fixture
def no_picamera2(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # `import picamera2` raises ImportError


@pytest.fixture(scope="module")
def clf(tiny_artifact) -> Classifier:
    return Classifier.open(tiny_artifact, num_threads=1)


def test_without_picamera2_the_error_says_how_to_get_it(no_picamera2):
    with pytest.raises(CameraUnavailableError) as caught:
        open_picamera2()
    message = str(caught.value)
    assert "sudo apt install python3-picamera2" in message and "--system-site-packages" in message
    assert "\n" not in message


def test_no_camera_is_a_clear_error(fake_picamera2):
    def no_camera(camera_num=0):
        raise IndexError("list index out of range")

    fake_picamera2.Picamera2 = no_camera
    with pytest.raises(CameraUnavailableError, match="no camera 0 .*rpicam-hello --list-cameras"):
        open_picamera2()


def test_frames_are_rgb_and_predict_like_the_same_picture(fake_picamera2, clf):
    picam = open_picamera2((320, 240))
    assert picam.config["main"] == {"size": (320, 240), "format": "XBGR8888"}
    frame = next(picamera2_frames(picam))
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    ticks = iter([1.0, 1.025, 2.0, 2.030])
    results = list(classify_frames(clf, picamera2_frames(picam), top_k=2, limit=2, clock=lambda: next(ticks)))
    expected = clf.predict(rgb_photo((320, 240)), top_k=2).predictions
    assert [r.frame for r in results] == [1, 2]
    assert all(r.classification.predictions == expected for r in results)
    assert [round(r.latency_ms, 3) for r in results] == [25.0, 30.0]
    line = frame_line(results[0])
    assert line.startswith("frame 1  25.0 ms  ") and expected[0].label in line
    data = results[1].to_dict()
    assert data["frame"] == 2 and data["latency_ms"] == 30.0 and data["predictions"][0]["label"] in TINY_LABELS


@pytest.mark.parametrize("text", ["640", "0x480", "axb", "640x-1"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(Exception, match="WIDTHxHEIGHT"):
        parse_size(text)
    assert parse_size("320X240") == (320, 240)


def test_cli_camera_prints_json_lines_and_closes_the_camera(fake_picamera2, tiny_artifact, capsys):
    assert main(["camera", str(tiny_artifact), "--frames", "3", "--json", "--top-k", "2", "--threads", "1",
                 "--size", "160x120"]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["frame"] for line in lines] == [1, 2, 3]
    assert all(len(line["predictions"]) == 2 and line["latency_ms"] > 0 for line in lines)
    assert "3 frames, median" in err
    (picam,) = FakePicamera2.instances
    assert picam.closed and picam.config["main"]["size"] == (160, 120)


def test_cli_camera_stops_cleanly_on_ctrl_c(fake_picamera2, tiny_artifact, capsys):
    fake_picamera2.Picamera2 = lambda camera_num=0: FakePicamera2(camera_num, interrupt_after=2)
    assert main(["camera", str(tiny_artifact), "--threads", "1"]) == 0
    out, err = capsys.readouterr()
    assert len([line for line in out.splitlines() if line.startswith("frame ")]) == 2 and "2 frames, median" in err
    assert FakePicamera2.instances[0].closed


def test_cli_camera_without_picamera2_is_one_line(no_picamera2, tiny_artifact, capsys):
    assert main(["camera", str(tiny_artifact)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("vitedge: error: picamera2 is not available") and err.count("\n") == 1


def load_example():
    spec = importlib.util.spec_from_file_location("pi_camera_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_classifies_frames(fake_picamera2, tiny_artifact, clf, capsys):
    example = load_example()
    assert example.main([str(tiny_artifact), "--frames", "2", "--threads", "1", "--top-k", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = clf.predict(rgb_photo(), top_k=1).top
    assert len(lines) == 2 and all(line.endswith(f"{expected.label} {expected.score:.1%}") for line in lines)
    assert FakePicamera2.instances[0].closed


def test_example_without_picamera2_says_how_to_install_it(no_picamera2, tiny_artifact, capsys):
    assert load_example().main([str(tiny_artifact)]) == 1
    assert "sudo apt install python3-picamera2" in capsys.readouterr().err


def test_frame_result_json_keeps_the_predict_shape(clf):
    result = FrameResult(7, clf.predict(rgb_photo(), top_k=1), 12.345)
    assert result.to_dict() == {**clf.predict(rgb_photo(), top_k=1).to_dict(), "frame": 7, "latency_ms": 12.35}
