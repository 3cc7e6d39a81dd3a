"""ExecuTorch backend: ExecuTorch's Python runtime extension (``executorch.extension.pybindings._C``), XNNPACK delegate.

This is the one runtime module that imports torch, because ExecuTorch's Python runtime cannot run
without it: the pip wheel's runtime extension links libtorch (``portable_lib`` imports torch before
it loads), and a method takes and returns torch tensors only (a numpy array is refused:
"Unsupported python type numpy.ndarray"). So the torch use here is narrow: ``torch.from_numpy`` on
the way in (no copy), ``.numpy()`` on the way out. The import-linter contract names this module as
its one exception; a torch-free ExecuTorch runtime means the C++ runtime (Android, iOS, embedded).

The extension is loaded directly, not through ``executorch.runtime``: that public wrapper (and
``portable_lib``) first import ExecuTorch's compiler package (``executorch.exir``, torchao), ~3 s of a
~5 s cold load of a ViT-B .pte on a 2-core x86 machine, for nothing a loaded program needs. Should a
release move the extension, the public wrapper is the fallback.

The models are exported at batch 1 (see ``vitedge.converters.executorch.export``), so
``max_batch_size`` is 1 and a batch runs image by image.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import logging
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vitedge.errors import ArtifactError, UsageError
from vitedge.runtime.manifest import Manifest
from vitedge.runtime.native_noise import debugging

METHOD = "forward"
#: Bytes 4-8 of a .pte file: the flatbuffer file identifier, "ET" and a two-digit schema version.
IDENTIFIER = re.compile(rb"ET\d\d")
#: Lines the runtime prints on every load that say nothing to a user (its CPU probing on x86).
NOISE = ("cpuinfo_utils.cpp", "threadpool.cpp")
#: torchao logs "Failed to load …/_C_*.so" (its CUDA kernels) when executorch.runtime imports it.
TORCHAO_NOISE = "Failed to load "


class ExecuTorchBackend:
    """One loaded ExecuTorch program and its ``forward`` method; not thread safe (the Classifier serializes calls).

    Args:
        model_path: The .pte file.
        manifest: The artifact's manifest (input shape, output order).
        num_threads: Threads of ExecuTorch's thread pool, which XNNPACK runs on (None: its default, the
            performance cores). The pool is the whole process's: it is sized before the first program
            loads (resizing it under a loaded program hangs that program's next run), so a later
            different count is not applied, with a warning; :attr:`num_threads` says what runs.
    """

    name = "executorch"
    thread_safe = False

    def __init__(self, model_path: Path, manifest: Manifest, *, num_threads: int | None = None) -> None:
        global _loaded
        extension = _extension()  # loads libtorch: ExecuTorch's Python runtime cannot run without it
        import torch  # its methods take and return torch tensors (see the module's docstring)

        self._tensor = torch.from_numpy
        self.num_threads = _size_thread_pool(extension, num_threads)
        _check_identifier(model_path)
        said = _Said()
        try:
            with _runtime_output(said):
                _loaded = True  # from here on the thread pool must not be resized
                self._program = extension._load_program(
                    str(model_path), enable_etdump=False, debug_buffer_size=0,
                    program_verification=extension.Verification.InternalConsistency)
                self._method = self._program.load_method(METHOD)
        except Exception as error:  # the runtime raises RuntimeError("... error: 0x:23") and logs the reason
            reason = said.reason() or " ".join(str(error).split())
            raise ArtifactError(f"{model_path}: ExecuTorch cannot load it ({reason})",
                                hint="re-create the artifact with vitedge convert --to executorch") from error
        self.version = importlib.metadata.version("executorch")
        self.input_shape = tuple(self._method.method_meta().input_tensor_meta(0).sizes())
        if manifest.input.shape[1:] != self.input_shape[1:]:
            raise ArtifactError(
                f"{model_path}: the model takes {self.input_shape} but the manifest says {manifest.input.shape}",
                hint="the model file and manifest.json do not belong together; re-create the artifact",
            )
        self._keys = ("logits", "embedding") if manifest.outputs.embedding else ("logits",)
        self.max_batch_size = self.input_shape[0]

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run a float32 NCHW batch; returns float32 ``logits`` and ``embedding``."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.shape[1:] != self.input_shape[1:]:
            raise UsageError(f"input of shape {batch.shape[1:]} where the model takes {self.input_shape[1:]}")
        step = self.input_shape[0]
        parts = []
        for start in range(0, len(batch), step):
            outputs = self._method((self._tensor(batch[start : start + step]),))
            parts.append([output.numpy() for output in outputs])
        return {key: np.concatenate([part[i] for part in parts]).astype(np.float32, copy=False)
                for i, key in enumerate(self._keys)}


#: Whether this process has loaded an ExecuTorch program (its XNNPACK runtime holds the thread pool).
_loaded = False


def _size_thread_pool(extension, num_threads: int | None) -> int:
    """Size ExecuTorch's process-wide thread pool (of the runtime ``extension``) to ``num_threads`` while that is
    safe; the size in use."""
    with _runtime_output(_Said()):  # the first call probes the CPU, a reset says so: log lines
        current = extension._threadpool_get_thread_count()
        if num_threads and num_threads != current and not _loaded:
            extension._unsafe_reset_threadpool(num_threads)
            return extension._threadpool_get_thread_count()
    if num_threads and num_threads != current:
        warnings.warn(
            f"ExecuTorch runs on one thread pool per process, {current} threads, already in use here: "
            f"{num_threads} thread(s) not applied (open ExecuTorch artifacts in a fresh process to choose)",
            stacklevel=4,
        )
    return current


def _not_torchao_noise(record: logging.LogRecord) -> bool:
    return TORCHAO_NOISE not in record.getMessage()


def _extension():
    """ExecuTorch's compiled runtime extension, after libtorch (it links it); the public wrapper if it moved."""
    import torch  # noqa: F401 - loads libtorch, which the extension links

    try:
        from executorch.extension.pybindings import _C

        return _C
    except ImportError:
        logging.getLogger("torchao").addFilter(_not_torchao_noise)  # added once: the same function
        with warnings.catch_warnings():  # "This API is experimental and subject to change without notice."
            warnings.filterwarnings("ignore", message="This API is experimental")
            from executorch.extension.pybindings import portable_lib

        return portable_lib


def _check_identifier(model_path: Path) -> None:
    """Refuse a file that is not a .pte before the runtime reads it.

    ExecuTorch 1.5 logs a wrong identifier as text, and one that is not UTF-8 aborts the process
    (pybind11 fails to decode the log line and terminates), so garbage must never reach it.
    """
    try:
        with open(model_path, "rb") as file:
            header = file.read(8)
    except OSError as error:
        raise ArtifactError(f"{model_path}: cannot read it ({error.strerror})") from error
    if not IDENTIFIER.fullmatch(header[4:8]):
        raise ArtifactError(f"{model_path}: not an ExecuTorch program (no 'ET' file identifier)",
                            hint="re-create the artifact with vitedge convert --to executorch")


class _Said:
    """What the runtime printed inside a :func:`_runtime_output` block."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def reason(self) -> str:
        """The last line the runtime printed, without its ``[file.cpp:123]`` prefix."""
        return re.sub(r"^\[[^\]]*\]\s*", "", self.lines[-1]) if self.lines else ""


@contextlib.contextmanager
def _runtime_output(said: _Said) -> Iterator[None]:
    """Collect what the runtime prints (it logs through Python's sys.stderr) into ``said``.

    After the block, all but the known noise is shown; when the block fails, nothing is: the error
    raised quotes the reason (:meth:`_Said.reason`), so the user reads it once.
    """
    if debugging():
        yield
        return
    sink = io.StringIO()
    try:
        with contextlib.redirect_stderr(sink):
            yield
    finally:
        said.lines = [line for line in sink.getvalue().splitlines() if line.strip()]
    kept = [line for line in said.lines if not any(fragment in line for fragment in NOISE)]
    if kept:
        sys.stderr.write("\n".join(kept) + "\n")
