"""Write an artifact folder atomically: build it in a hidden sibling folder, rename it into place.

A failed or interrupted conversion leaves no half artifact that looks whole: until the final
rename the output only exists as ``.NAME.partial-XXXX`` next to where it will go, and that
folder is removed on any error (including Ctrl-C).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
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


@contextlib.contextmanager
def atomic_folder(out: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a fresh work folder; on success it replaces ``out``, on any error it is deleted."""
    check_destination(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield work
        _replace(work, out, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _replace(work: Path, out: Path, *, overwrite: bool) -> None:
    os.chmod(work, 0o755)  # mkdtemp makes it 0700
    if not out.exists():
        os.rename(work, out)
        return
    check_destination(out, overwrite=overwrite)
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rename(out, old / "artifact")
    os.rename(work, out)
    shutil.rmtree(old, ignore_errors=True)
