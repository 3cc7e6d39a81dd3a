"""Native libraries' known log noise is hidden; every other line written to stderr still shows."""

from __future__ import annotations

import os

from vitedge.runtime.native_noise import DEBUG_VARIABLE, native_noise_hidden


def _write_native(text: str) -> None:
    os.write(2, text.encode())  # what C++ code does: straight to the descriptor, past sys.stderr


def test_known_noise_is_dropped_and_the_rest_kept(capfd, monkeypatch):
    monkeypatch.delenv(DEBUG_VARIABLE, raising=False)
    with native_noise_hidden():
        _write_native("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        _write_native("E0000 real trouble: cannot open model\n")
        _write_native("I0000 port.cc:153] oneDNN custom operations are on. You may see ...\n")
    err = capfd.readouterr().err
    assert "real trouble" in err
    assert "XNNPACK delegate" not in err and "oneDNN" not in err


def test_debug_shows_everything(capfd, monkeypatch):
    monkeypatch.setenv(DEBUG_VARIABLE, "1")
    with native_noise_hidden():
        _write_native("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    assert "XNNPACK delegate" in capfd.readouterr().err


def test_lines_written_before_an_error_are_not_lost(capfd, monkeypatch):
    monkeypatch.delenv(DEBUG_VARIABLE, raising=False)
    try:
        with native_noise_hidden():
            _write_native("F0000 fatal: the real reason\n")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert "the real reason" in capfd.readouterr().err


def test_cli_debug_turns_the_filter_off_for_its_run_only(monkeypatch, capsys):
    from vitedge import cli
    from vitedge.runtime import native_noise

    monkeypatch.delenv(DEBUG_VARIABLE, raising=False)
    seen = []
    monkeypatch.setitem(cli.COMMANDS, "formats", lambda args: seen.append(native_noise.debugging()) or 0)
    assert cli.main(["formats", "--debug"]) == 0 and cli.main(["formats"]) == 0
    assert seen == [True, False] and DEBUG_VARIABLE not in os.environ
