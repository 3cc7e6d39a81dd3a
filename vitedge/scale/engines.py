"""The engines: the same two stages run in this process (local) or as a Ray Data pipeline (ray).

Each engine takes the chunks still to do and yields output tables (rows of any chunks, in any order; the
job assembles and writes the shards). Ray: ``from_arrow`` (one block per chunk) -> ``map_batches(decode)``
(tasks) -> ``map_batches(ModelStage)`` on an actor pool, each actor holding one Classifier; Ray retries the
work of a worker that dies (``max_restarts``/``max_task_retries``), and Ray Data may fuse the two stages
into the actors.

Fault tolerance is Ray Data's: a dead actor is restarted and the batches it held are retried (its
defaults, ``max_restarts=-1`` and ``max_task_retries=-1``, are what this pipeline relies on); a failed
decode task is retried as any Ray task.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from vitedge.errors import BackendUnavailableError, UsageError, VitedgeError
from vitedge.runtime.native_noise import NOISE, debugging, native_noise_hidden
from vitedge.runtime.preprocess_spec import PreprocessSpec
from vitedge.scale.plan import Chunk
from vitedge.scale.stages import (
    CHUNK,
    PATH,
    ArtifactHandle,
    ModelStage,
    StageOptions,
    artifact_files,
    decode_batch,
)

ENGINES = ("local", "ray")
RAY_INSTALL = "pip install 'vitedge[scale]'"
#: Images per Ray Data batch, at least (the model stage splits them into the runtime's batch size).
MIN_RAY_BATCH = 16
PROBE_TIMEOUT_S = 10.0
_VITEDGE_LINE = re.compile(r"vitedge\.errors\.\w+: ([^\n]+)")
#: Lines Ray's C++ core writes to stderr on every actor pool start, about its own internals.
RAY_NOISE = (*NOISE, "has constructor arguments in the object store")
_UNREACHABLE = ("start a cluster with `ray start --head` (then --address auto), or check --address "
                "(ray://HEAD:10001 for Ray Client, HEAD:6379 from a node of the cluster)")


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a Ray job runs.

    Args:
        address: None starts a local Ray for the job (stopped after); ``auto`` joins the cluster this
            machine belongs to (``ray start --head``); ``ray://HOST:10001`` connects a Ray client.
            Ignored when Ray is already initialized in this process (the caller's session is used).
        workers: Actors in the pool, each holding one Classifier (None: the cluster's CPUs divided by
            the threads per worker).
        progress_bars: Ray Data's own progress bars on stderr.
    """

    address: str | None = None
    workers: int | None = None
    progress_bars: bool = False

    def __post_init__(self) -> None:
        if self.workers is not None and (isinstance(self.workers, bool) or self.workers < 1):
            raise UsageError(f"workers must be 1 or more, got {self.workers!r}")


def _chunk_table(chunk: Chunk):
    import pyarrow as pa

    return pa.table({CHUNK: pa.array([chunk.index] * len(chunk), pa.int32()), PATH: pa.array(chunk.paths, pa.string())})


def run_local(chunks: Sequence[Chunk], artifact: ArtifactHandle, options: StageOptions, spec: PreprocessSpec,
              max_pixels: int, *, stage_class: type = ModelStage) -> Iterator:
    """The two stages in this process, batch by batch."""
    stage = stage_class(artifact, options)
    for chunk in chunks:
        table = _chunk_table(chunk)
        for start in range(0, table.num_rows, options.batch_size):
            yield stage(decode_batch(table.slice(start, options.batch_size), spec=spec, max_pixels=max_pixels))


def import_ray():
    """Ray with Ray Data, or one line saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data ships as ray[data]
    except ImportError as error:
        raise BackendUnavailableError(f"--engine ray needs Ray Data, which is not installed ({error.name or error})",
                                      hint=RAY_INSTALL) from error
    return ray


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[object]:
    """Ray, initialized for the job unless the caller already did; shut down after if we started it."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    where = address or "a new local Ray"
    try:
        _probe(address)
        with warnings.catch_warnings():  # Ray Client warns, then raises: the error says it once
            warnings.simplefilter("ignore")
            # the workers' own log lines reach the terminal with --debug; their errors come back as exceptions
            ray.init(address=address, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=debugging())
    except (ConnectionError, TimeoutError, RuntimeError, ValueError, OSError) as error:
        ray.shutdown()
        raise VitedgeError(f"cannot reach Ray at {where}: {' '.join(str(error).split())[:200]}", hint=_UNREACHABLE) from error
    try:
        yield ray
    finally:
        ray.shutdown()


def _probe(address: str | None) -> None:
    """Fail in seconds on a HOST:PORT nothing listens on (Ray itself would retry for minutes)."""
    if address is None or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT", hint=_UNREACHABLE)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as error:
        raise ConnectionError(f"nothing answers at {host}:{port} ({error.strerror or error})") from error


def _default_workers(ray, cpus_per_worker: float) -> int:
    cpus = float(ray.cluster_resources().get("CPU", 1))
    return max(1, int(cpus // cpus_per_worker))


def run_ray(chunks: Sequence[Chunk], artifact: ArtifactHandle, options: StageOptions, spec: PreprocessSpec,
            max_pixels: int, ray_options: RayOptions, *, stage_class: type = ModelStage) -> Iterator:
    """The two stages as a Ray Data pipeline; yields output tables as the actors finish them.

    ``stage_class`` is :class:`ModelStage` or a subclass (tests inject a worker that dies).
    """
    with ray_session(ray_options.address) as ray:
        from ray.data import ActorPoolStrategy, DataContext, TaskPoolStrategy

        DataContext.get_current().enable_progress_bars = ray_options.progress_bars
        options = replace(options, threads=options.threads or 1)  # an actor per core by default, not all cores each
        cpus = float(options.threads)
        workers = ray_options.workers or _default_workers(ray, cpus)
        if ray_options.address is not None and artifact.files is None:  # a cluster: ship the artifact
            artifact = ArtifactHandle(artifact.path, artifact.sha256, [ray.put(artifact_files(artifact.path))])
        batch = max(options.batch_size, MIN_RAY_BATCH)
        dataset = ray.data.from_arrow([_chunk_table(chunk) for chunk in chunks])
        # Decoding reserves no CPU: the actors hold the cores (one per thread), and a decode task waiting for a
        # free CPU beside them would wait forever; one decode task per actor at a time keeps the pool fed.
        dataset = dataset.map_batches(decode_batch, batch_format="pyarrow", batch_size=batch,
                                      fn_kwargs={"spec": spec, "max_pixels": max_pixels}, num_cpus=0,
                                      compute=TaskPoolStrategy(size=workers))
        dataset = dataset.map_batches(
            stage_class, fn_constructor_args=(artifact, options), batch_format="pyarrow", batch_size=batch,
            compute=ActorPoolStrategy(size=workers), num_cpus=cpus,
        )
        with _quiet_ray_data(not ray_options.progress_bars), _one_line_errors(), warnings.catch_warnings():
            # a job smaller than the pool (a few shards) leaves actors idle: Ray Data warns; nothing to do about it
            warnings.filterwarnings("ignore", message="The minimum number of concurrent actors")
            batches = iter(dataset.iter_batches(batch_size=None, batch_format="pyarrow"))
            with native_noise_hidden(RAY_NOISE):  # the actors start while the first batch is awaited
                first = next(batches, None)
            if first is not None:
                yield first
                yield from batches


@contextlib.contextmanager
def _quiet_ray_data(quiet: bool) -> Iterator[None]:
    """Ray Data's INFO lines (execution started/finished, progress bars off) only when its bars are on."""
    logger = logging.getLogger("ray.data")
    previous = logger.level
    if quiet:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """A worker's VitedgeError (an artifact it cannot open, a backend not installed there) as itself."""
    from ray.exceptions import RayError

    try:
        yield
    except RayError as error:
        cause = _vitedge_cause(error)
        if cause is not None:
            raise cause from error
        reported = _VITEDGE_LINE.findall(str(error))  # an actor that failed to start carries only its traceback's text
        if reported:
            raise VitedgeError(f"a Ray worker could not start: {reported[-1].strip()}") from error
        raise VitedgeError(f"the Ray job failed: {' '.join(str(error).split())[:300]}",
                           hint="rerun the same command to resume; --debug shows the workers' traceback") from error


def _vitedge_cause(error: BaseException) -> VitedgeError | None:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, VitedgeError):
            return error
        error = getattr(error, "cause", None) or error.__cause__
    return None
