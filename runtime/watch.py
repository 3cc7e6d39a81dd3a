"""Watch a folder and classify the images that arrive in it. Torch free, no dependencies.

Polling, not inotify: ``os.scandir`` every ``interval`` seconds works the same on every OS and
file system (SD cards, USB sticks, network shares) and needs nothing installed. A file is read
only once its size and modification time have stayed the same for ``settle`` seconds, so a file
that is still being copied or written is not read half way; if it changes while being read, the
result is dropped and the file is read again once it settles.

What is ignored: names starting with ``.`` (hidden files, and the ``.name.XXXX`` temporary files
that rsync and many writers rename into place), partial-download and temporary suffixes
(:data:`TEMP_SUFFIXES`), and anything whose suffix is not an image suffix
(:data:`~vitedge.runtime.images.IMAGE_EXTENSIONS`).

A file that is replaced or rewritten (new size or modification time) is classified again. A file
removed before it could be read is skipped and counted, not reported as an error; a corrupt
image is reported once (one line) and the watch goes on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from vitedge.errors import UsageError, VitedgeError
from vitedge.runtime.images import IMAGE_EXTENSIONS

TEMP_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".swp", "~")
"""Name endings (lowercase) of files still being written by browsers, editors and copy tools."""

Signature = tuple[int, int]
"""(size in bytes, modification time in ns): a file has settled when this stops changing."""


def is_candidate(name: str) -> bool:
    """Whether a file name looks like a finished image (not hidden, not temporary, an image suffix)."""
    lowered = name.lower()
    if name.startswith(".") or lowered.endswith(TEMP_SUFFIXES):
        return False
    return os.path.splitext(lowered)[1] in IMAGE_EXTENSIONS


@dataclass
class _Entry:
    signature: Signature
    changed_at: float  # watcher clock time when the signature was last seen to change
    handled: Signature | None = None  # the version already classified (or reported as failed)


class FolderWatcher:
    """Finds the image files in a folder that are new or rewritten and have stopped changing.

    Args:
        folder: The folder to watch.
        recursive: Also watch subfolders (hidden ones are skipped).
        settle: Seconds a file's size and modification time must stay unchanged before it is ready.
        include_existing: Also report the images already there at the first poll (default: only
            files that appear or change afterwards).
        clock: A monotonic clock in seconds (tests pass a fake one).

    Raises:
        UsageError: ``folder`` is not a folder, or ``settle`` is negative.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        recursive: bool = False,
        settle: float = 1.0,
        include_existing: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = os.fsdecode(folder)
        if not os.path.isdir(self.folder):
            raise UsageError(f"{self.folder}: not a folder (or it does not exist)", hint="pass --watch an existing folder")
        if settle < 0:
            raise UsageError(f"settle must be 0 or more seconds, got {settle}")
        self.recursive = recursive
        self.settle = settle
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        self._baseline = not include_existing

    def scan(self) -> dict[str, Signature]:
        """The candidate image files now in the folder, with their signatures."""
        found: dict[str, Signature] = {}
        pending = [self.folder]
        while pending:
            folder = pending.pop()
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                if folder == self.folder:
                    raise VitedgeError(f"{self.folder}: the watched folder was removed") from None
                continue  # a subfolder removed while we looked
            except PermissionError:
                if folder == self.folder:
                    raise VitedgeError(f"{self.folder}: permission denied", hint="check the folder's permissions") from None
                continue
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if self.recursive and not entry.name.startswith("."):
                            pending.append(entry.path)
                    elif is_candidate(entry.name) and entry.is_file():
                        stat = entry.stat()
                        found[entry.path] = (stat.st_size, stat.st_mtime_ns)
                except FileNotFoundError:
                    continue  # removed between the listing and the stat
        return found

    def poll(self) -> list[str]:
        """The files ready to be read now, oldest modification first; each version is returned once.

        A file is ready when it is not empty and its signature has not changed for ``settle``
        seconds. Until :meth:`done` or :meth:`retry` is called for it, it is not returned again.
        """
        now = self.clock()
        current = self.scan()
        for path in self._entries.keys() - current.keys():
            del self._entries[path]  # removed: if it comes back, it is new
        ready = []
        for path, signature in current.items():
            entry = self._entries.get(path)
            if entry is None:
                entry = self._entries[path] = _Entry(signature, now, handled=signature if self._baseline else None)
            elif entry.signature != signature:
                entry.signature, entry.changed_at = signature, now
            if entry.handled != signature and signature[0] > 0 and now - entry.changed_at >= self.settle:
                entry.handled = signature  # in flight; done() or retry() decides
                ready.append(path)
        self._baseline = False
        return sorted(ready, key=lambda path: (current[path][1], path))

    def signature(self, path: str) -> Signature | None:
        """The file's signature now, or None when it is gone."""
        try:
            stat = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return (stat.st_size, stat.st_mtime_ns)

    def changed_since_poll(self, path: str) -> bool:
        """Whether the file is gone, or differs from the version :meth:`poll` returned."""
        entry = self._entries.get(path)
        return entry is None or self.signature(path) != entry.handled

    def retry(self, path: str) -> None:
        """Read this file again once it settles (it was changing while being read)."""
        entry = self._entries.get(path)
        if entry is not None:
            entry.handled = None
            entry.changed_at = self.clock()


@dataclass
class WatchSummary:
    """What a watch did, for the line printed when it stops."""

    classified: int = 0
    failed: int = 0
    removed: int = 0
    retried: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def text(self, folder: str, now: float | None = None) -> str:
        seconds = (time.monotonic() if now is None else now) - self.started_at
        parts = [f"{self.classified} classified", f"{self.failed} unreadable"]
        if self.removed:
            parts.append(f"{self.removed} removed before they could be read")
        return f"watched {folder} for {seconds:.0f} s: {', '.join(parts)}"


def watch(
    predict: Callable[[Sequence[str]], Iterable],
    watcher: FolderWatcher,
    *,
    interval: float = 1.0,
    batch_size: int = 8,
    summary: WatchSummary | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator:
    """Classify the images that arrive in a folder, forever (stop it with KeyboardInterrupt).

    Args:
        predict: Classifies a list of paths, returning one result per path in order
            (``functools.partial(classifier.predict, top_k=5)``); results have ``image`` and ``ok``.
        watcher: The folder to watch.
        interval: Seconds between polls.
        batch_size: Files handed to ``predict`` at once (results show up batch by batch).
        summary: Counts what happened (pass one to read it after the watch stops).
        sleep: ``time.sleep`` (tests pass a fake one).

    Yields:
        One result per image version, in arrival order: classifications, and the errors of
        images that could not be read although they stopped changing (corrupt files). Files
        that changed while being read are read again later; files removed before they could
        be read are skipped and counted in ``summary.removed``.
    """
    if interval <= 0:
        raise UsageError(f"the watch interval must be more than 0 seconds, got {interval}")
    summary = summary if summary is not None else WatchSummary()
    while True:
        ready = watcher.poll()
        size = max(batch_size, 1)
        for start in range(0, len(ready), size):
            batch = ready[start : start + size]
            for path, result in zip(batch, predict(batch)):
                gone = watcher.signature(path) is None
                if gone and not result.ok:
                    summary.removed += 1  # gone before it could be read
                    continue
                if not gone and watcher.changed_since_poll(path):
                    summary.retried += 1  # still being written: read it again once it settles
                    watcher.retry(path)
                    continue
                if result.ok:
                    summary.classified += 1
                else:
                    summary.failed += 1
                yield result
        sleep(interval)
