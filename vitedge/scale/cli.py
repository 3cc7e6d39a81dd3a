"""The bulk-job options of ``vitedge embed`` and ``vitedge predict`` and their handler (cli.py registers them).

``--out DIR`` (anything but a ``.npy`` file) or ``--engine`` makes a run a bulk job: Parquet shards in DIR,
resumable, on this process (``--engine local``, the default) or a Ray cluster (``--engine ray``).
"""

from __future__ import annotations

import argparse
import sys
import time

from vitedge.errors import UsageError
from vitedge.scale.engines import ENGINES, RayOptions
from vitedge.scale.job import JobResult, ShardWritten, run_job
from vitedge.scale.plan import DEFAULT_SHARD_SIZE
from vitedge.scale.stages import artifact_sha256

__all__ = ["add_job_options", "artifact_sha256", "cmd_job", "is_job"]
PROGRESS_EVERY_S = 5.0
SHOWN_ERRORS = 5


def add_job_options(parser: argparse.ArgumentParser, *, task: str) -> None:
    """Add the bulk-job options to the ``embed`` or ``predict`` parser."""
    group = parser.add_argument_group("bulk jobs: Parquet shards in a folder, resumable (pip install 'vitedge[scale]')")
    if task == "predict":
        group.add_argument("--out", metavar="DIR", help="write Parquet shards into DIR (path, labels, scores, error) "
                                                        "instead of printing")
    else:
        group.add_argument("--top-k", type=int, default=0, metavar="K",
                           help="with --out DIR: also store the top-K labels and scores (default 0: none)")
    group.add_argument("--engine", choices=ENGINES,
                       help="where the job runs: local (this process, the default) or ray (a Ray Data actor pool)")
    group.add_argument("--address", metavar="auto|ray://HOST:PORT",
                       help="--engine ray: the cluster (default: start a local Ray for this job; auto: the cluster "
                            "this machine joined with `ray start`)")
    group.add_argument("--workers", type=int, metavar="N",
                       help="--engine ray: actors, each holding one model (default: the cluster's CPUs / --threads)")
    group.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, metavar="N",
                       help=f"images per Parquet shard, the unit a rerun skips (default {DEFAULT_SHARD_SIZE})")
    group.add_argument("--overwrite", action="store_true", help="replace another job's shards in --out DIR")


def is_job(args: argparse.Namespace) -> bool:
    """Whether the command line asks for a bulk job (``--engine``, or an ``--out`` that is not a .npy file)."""
    out = getattr(args, "out", None)
    return args.engine is not None or (out is not None and not out.endswith(".npy"))


def _check(args: argparse.Namespace, task: str) -> None:
    if args.out is None or args.out.endswith(".npy"):
        what = "a folder for the Parquet shards" if task == "predict" else "a folder, not a .npy file"
        raise UsageError(f"--engine {args.engine} writes Parquet shards: --out must be {what}", hint="e.g. --out embeddings/")
    if (args.engine or "local") == "local":
        for option in ("address", "workers"):
            if getattr(args, option) is not None:
                raise UsageError(f"--{option} goes with --engine ray")
    if getattr(args, "json", False) or getattr(args, "watch", None):
        raise UsageError("--json and --watch print results; with --out DIR they go to Parquet shards",
                         hint="read them with pyarrow, pandas or vitedge.scale.read_job_table")
    if getattr(args, "no_normalize", False) and task == "predict":
        raise UsageError("--no-normalize goes with embed")


def cmd_job(args: argparse.Namespace, task: str, *, threads: int | None) -> int:
    """Run ``vitedge embed|predict ARTIFACT SOURCE… --out DIR [--engine …]``; exit 1 when images were unreadable."""
    _check(args, task)
    engine = args.engine or "local"
    sources = args.images
    print(f"vitedge: {task} {', '.join(sources)} -> {args.out} ({engine}"
          f"{' at ' + args.address if args.address else ''}) …", file=sys.stderr, flush=True)
    progress = _Progress()
    try:
        result = run_job(
            args.artifact, sources, args.out, task=task, engine=engine, top_k=args.top_k,
            normalize=not getattr(args, "no_normalize", False), batch_size=args.batch_size, threads=threads,
            shard_size=args.shard_size, max_pixels=args.max_pixels, verify=not args.no_verify,
            device=getattr(args, "device", None), overwrite=args.overwrite,
            ray=RayOptions(address=args.address, workers=args.workers), on_shard=progress,
        )
    except KeyboardInterrupt:
        done = f"{progress.done_images}/{progress.total_images} images written" if progress.total_images else "stopped"
        print(f"vitedge: {done}; run the same command again to finish the job", file=sys.stderr, flush=True)
        raise
    print(_summary(result))
    for line in result.error_lines[:SHOWN_ERRORS]:
        print(f"ERROR {line}", file=sys.stderr)
    if len(result.error_lines) > SHOWN_ERRORS:
        print(f"… and {len(result.error_lines) - SHOWN_ERRORS} more (the shards' error column)", file=sys.stderr)
    return 1 if result.errors else 0


class _Progress:
    """One stderr line per shard at most every few seconds, and the last one."""

    def __init__(self) -> None:
        self.last = 0.0
        self.done_images = self.total_images = 0

    def __call__(self, shard: ShardWritten) -> None:
        self.done_images, self.total_images = shard.done_images, shard.total_images
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S or shard.done_images == shard.total_images:
            self.last = now
            print(f"vitedge: {shard.done_images}/{shard.total_images} images written", file=sys.stderr, flush=True)


def _summary(result: JobResult) -> str:
    rate = f", {result.images / result.seconds:.1f} images/s" if result.shards_written == result.shards and result.seconds else ""
    skipped = f" ({result.shards_skipped} already there)" if result.shards_skipped else ""
    errors = f"; {result.errors} unreadable image(s): rows with an error" if result.errors else ""
    return (f"wrote {result.out}: {result.images} rows in {result.shards} shard(s){skipped}, {result.engine} engine, "
            f"{result.seconds:.1f} s{rate}{errors}")
