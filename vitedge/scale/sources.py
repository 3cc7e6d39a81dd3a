"""What a bulk job reads: SOURCE arguments resolved to one sorted list of image paths or URIs.

A SOURCE is a folder (searched recursively), a glob (``photos/**/*.jpg``), a text file with one path or
URI per line (``.txt``, ``.lst``; blank lines and ``#`` comments skipped), a Parquet file with a ``path``
column, or one image. Folders and globs may be URIs of a filesystem pyarrow reads (``s3://bucket/photos/``,
``gs://…``, ``hdfs://…``) when its package is installed: Ray Data reads through the same filesystems.
Local paths become absolute, so Ray workers in other folders (or on other nodes with the same shared
storage) find them; relative paths inside a list file are relative to that file's folder.

The list is sorted and deduplicated: the same sources always give the same list, which is what makes a
job's shards deterministic (see :mod:`vitedge.scale.plan`).
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import os
from collections.abc import Iterable, Sequence

from vitedge.errors import ImageLoadError, UsageError
from vitedge.runtime.images import IMAGE_EXTENSIONS, expand_image_paths

LIST_SUFFIXES = (".txt", ".lst")
PARQUET_SUFFIXES = (".parquet", ".pq")
PATH_COLUMNS = ("path", "uri", "image")
_GLOB_CHARS = frozenset("*?[")


def is_uri(path: str) -> bool:
    """``s3://bucket/key`` and the like (but not a Windows drive letter or ``file://``)."""
    scheme, sep, _ = path.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme != "file"


def resolve_sources(sources: Sequence[str]) -> list[str]:
    """Expand SOURCE arguments into the sorted, deduplicated list of images a job reads.

    Args:
        sources: Folders, globs, list files (.txt/.lst), Parquet files with a ``path`` column, images.

    Returns:
        Absolute local paths and URIs, sorted, each once.

    Raises:
        UsageError: A source that does not exist, a glob or folder with no images, an unreadable list.
    """
    found: set[str] = set()
    for source in sources:
        paths = _resolve_one(os.fsdecode(source))
        if not paths:
            raise UsageError(f"{source}: no images found", hint="pass a folder, a glob, a list file or a Parquet file of paths")
        found.update(paths)
    return sorted(found)


def _resolve_one(source: str) -> list[str]:
    if is_uri(source):
        return _remote_glob(source) if _GLOB_CHARS & set(source) else _remote_listing(source)
    if source.startswith("file://"):
        source = source[len("file://"):]
    if _GLOB_CHARS & set(source) and not os.path.exists(source):
        return [os.path.abspath(path) for path in sorted(glob.glob(source, recursive=True)) if _is_image_name(path)]
    if os.path.isdir(source):
        return [os.path.abspath(path) for path in expand_image_paths([source])]
    if not os.path.exists(source):
        raise UsageError(f"{source}: no such file or folder", hint="check the path")
    lower = source.lower()
    if lower.endswith(LIST_SUFFIXES):
        return _absolute(_read_list(source), base=os.path.dirname(os.path.abspath(source)))
    if lower.endswith(PARQUET_SUFFIXES):
        return _absolute(_read_parquet_paths(source), base=os.path.dirname(os.path.abspath(source)))
    return [os.path.abspath(source)]


def _is_image_name(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _absolute(paths: Iterable[str], *, base: str) -> list[str]:
    return [path if is_uri(path) else os.path.normpath(os.path.join(base, path)) for path in paths]


def _read_list(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line.strip() for line in handle]
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: cannot read the list of images ({error})", hint="one path or URI per line, UTF-8") from error
    return [line for line in lines if line and not line.startswith("#")]


def _read_parquet_paths(path: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as error:
        raise UsageError(f"{path}: not a readable Parquet file ({error})") from error
    column = next((name for name in PATH_COLUMNS if name in schema.names), None)
    if column is None:
        raise UsageError(f"{path}: no {' / '.join(PATH_COLUMNS)} column (columns: {', '.join(schema.names)})",
                         hint="give the Parquet file a string column 'path' with one image path or URI per row")
    values = pq.read_table(path, columns=[column]).column(column).to_pylist()
    return [str(value) for value in values if value]


# -- object stores and other pyarrow filesystems --------------------------------------------------


@functools.lru_cache(maxsize=16)
def _filesystem(prefix: str) -> tuple[object, str]:
    """The pyarrow filesystem for ``scheme://host`` (made once per process) and its path for the URI ``prefix/``."""
    import pyarrow.fs as pafs

    try:
        filesystem, probe = pafs.FileSystem.from_uri(prefix + "/x")
    except (OSError, ValueError, ImportError) as error:  # unknown scheme, missing package or credentials
        raise UsageError(f"{prefix}: no filesystem for this URI ({' '.join(str(error).split())[:200]})",
                         hint="install the filesystem's package (e.g. pyarrow with S3 or GCS support)") from error
    return filesystem, probe[:-1]


def _split(uri: str) -> tuple[object, str, str]:
    """(filesystem, ``scheme://host``, the filesystem's path) for a URI."""
    scheme, _, rest = uri.partition("://")
    host, _, key = rest.partition("/")
    prefix = f"{scheme}://{host}"
    filesystem, root = _filesystem(prefix)
    return filesystem, prefix, root + key


def _remote_listing(uri: str) -> list[str]:
    import pyarrow.fs as pafs

    filesystem, prefix, path = _split(uri)
    root = _filesystem(prefix)[1]
    path = path.rstrip("/") or path
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise UsageError(f"{uri}: not found", hint="check the URI and your credentials")
    if info.type == pafs.FileType.File:
        return [uri]
    entries = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
    return [f"{prefix}/{entry.path[len(root):]}" for entry in entries
            if entry.type == pafs.FileType.File and _is_image_name(entry.path)]


def _remote_glob(uri: str) -> list[str]:
    root = uri
    while _GLOB_CHARS & set(root):
        root = root.rsplit("/", 1)[0]
    return [path for path in _remote_listing(root + "/") if fnmatch.fnmatchcase(path, uri)]


def read_bytes(uri: str) -> bytes:
    """The encoded bytes behind a URI, through its pyarrow filesystem.

    Raises:
        ImageLoadError: The object is missing or cannot be read.
    """
    try:
        filesystem, _, path = _split(uri)
        with filesystem.open_input_stream(path) as stream:
            return stream.read()
    except UsageError as error:
        raise ImageLoadError(uri, error.message, hint=error.hint) from error
    except FileNotFoundError:
        raise ImageLoadError(uri, "no such object", hint="check the URI") from None
    except OSError as error:
        raise ImageLoadError(uri, f"cannot read: {' '.join(str(error).split())[:200]}") from error
