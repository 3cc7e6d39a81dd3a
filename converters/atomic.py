"""Write a folder atomically: build it in a hidden sibling folder, rename it into place.

The one way vitedge writes a folder: artifacts (conversions), training outputs (finetune, distill)
and the quickstart's model and data folders. A failed or interrupted write leaves no half folder
that looks whole: until the final rename the output only exists as ``.NAME.partial-HOST-PID-XXXX``
next to where it will go, and that folder is removed on any error (including Ctrl-C). A process
killed outright (the OOM killer, SIGKILL) cannot clean up: the next write to the same place removes
the folders of this host's dead processes. Which existing folder may be replaced is the caller's
rule (:func:`check_destination` for artifacts).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from vitedge.errors import UsageError
from vitedge.runtime.manifest import MANIFEST_NAME


def check_destination(out: Path, *, overwrite: bool) -> None:
    """Refuse early (before any expensive work) when ``out`` cannot be written."""
    if not out.exists():
        return
    if not overwrite:
        raise UsageError(f"{out}: already exists", hint="pass --overwrite to replace it, or choose another --out")
    if not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder", hint="choose another --out")
    if any(out.iterdir()) and not (out / MANIFEST_NAME).is_file():
        raise UsageError(
            f"{out}: exists and is not a vitedge artifact; --overwrite only replaces artifacts",
            hint="choose an empty or new --out folder",
        )


#: ``check(out, overwrite=...)``: raises a UsageError when ``out`` may not be written (or replaced).
DestinationCheck = Callable[..., None]


@contextlib.contextmanager
def atomic_folder(
    out: Path, *, overwrite: bool, check: DestinationCheck | None = check_destination
) -> Iterator[Path]:
    """Yield a fresh work folder; on success it replaces ``out``, on any error it is deleted.

    Args:
        out: The folder to write.
        overwrite: Whether an existing ``out`` may be replaced (as ``check`` decides).
        check: Refuses an ``out`` that may not be written; called before any work and again just
            before the rename. The default replaces only a vitedge artifact, and only with
            ``overwrite``. None: ``out`` is the caller's own; whatever is there is replaced.
    """
    if check is not None:
        check(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out)
    work = Path(tempfile.mkdtemp(prefix=_prefix(out, "partial"), dir=out.parent))
    try:
        yield work
        _replace(work, out, overwrite=overwrite, check=check)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _replace(work: Path, out: Path, *, overwrite: bool, check: DestinationCheck | None) -> None:
    os.chmod(work, 0o755)  # mkdtemp makes it 0700
    if not out.exists():
        os.rename(work, out)
        return
    if check is not None:
        check(out, overwrite=overwrite)
    old = Path(tempfile.mkdtemp(prefix=_prefix(out, "old"), dir=out.parent))
    os.rename(out, old / "artifact")
    os.rename(work, out)
    shutil.rmtree(old, ignore_errors=True)


def _host_prefix(out: Path, kind: str) -> str:
    """What every ``kind`` ("partial", "old") work folder of ``out`` made on this host starts with."""
    return f".{out.name}.{kind}-{socket.gethostname()}-"


def _prefix(out: Path, kind: str, pid: int | None = None) -> str:
    return f"{_host_prefix(out, kind)}{os.getpid() if pid is None else pid}-"


def remove_stale(out: Path) -> list[Path]:
    """Remove the work folders next to ``out`` left by processes of this host that no longer run.

    Only this host's folders are touched (the parent may be a network share), and only those whose
    process is gone: a conversion running elsewhere on this machine keeps its folder.
    """
    removed = []
    for kind in ("partial", "old"):
        mine = _host_prefix(out, kind)
        for folder in out.parent.glob(f"{glob.escape(mine)}*"):
            pid = folder.name[len(mine):].partition("-")[0]
            if folder.is_dir() and pid.isdigit() and not _running(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
