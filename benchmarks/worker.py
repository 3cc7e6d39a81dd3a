"""One benchmark measurement in a fresh process: ``python -m vitedge.benchmarks.worker TARGET --result R.json``.

A fresh process per artifact keeps models from polluting each other's memory and caches, and makes
the load time a real cold(-process) load. In order, the worker:

1. imports the backend library (timed), then notes the resident memory (the baseline);
2. checks the files' checksums and loads the model (timed), runs the first batch-1 inference (timed);
3. per batch size: ``--warmup`` untimed calls, then ``--runs`` timed calls of the model alone
   (inputs are preprocessed beforehand; nothing else runs in the loop);
4. reads the peak resident memory (VmHWM), then, outside any timing, computes the logits of every
   image in ``--images`` for the accuracy numbers (``--outputs``, a .npy; unreadable images are NaN rows);
5. with ``--selfcheck``, runs the artifact's self-check through the loaded model (preprocessing and model
   parity against the conversion's references, :mod:`vitedge.runtime.selfcheck`), so a fleet's merged
   report shows which device drifts.

It writes one JSON object to ``--result``: the timings, or ``{"ok": false, "error": ...}``. Torch is
imported only for a ``torch:MODEL`` target.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from vitedge.benchmarks.memory import current_rss_bytes, peak_rss_bytes
from vitedge.benchmarks.targets import Target, open_target
from vitedge.errors import ImageLoadError, VitedgeError


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _preprocessed(paths: list[str], target: Target) -> list[np.ndarray | None]:
    from vitedge.runtime.images import load_rgb
    from vitedge.runtime.preprocess import preprocess

    tensors: list[np.ndarray | None] = []
    for path in paths:
        try:
            tensors.append(preprocess(load_rgb(path), target.preprocess))
        except ImageLoadError:
            tensors.append(None)
    return tensors


def timing_batch(tensors: list[np.ndarray | None], target: Target, batch_size: int) -> np.ndarray:
    """``batch_size`` inputs from the first readable images (repeated as needed), else seeded noise."""
    readable = [tensor for tensor in tensors[:batch_size] if tensor is not None]
    if readable and len({t.shape for t in readable}) == 1:
        base = np.stack(readable)
    else:
        height, width = target.preprocess.output_size or (224, 224)
        shape = (1, 3, height, width) if target.preprocess.layout == "NCHW" else (1, height, width, 3)
        base = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return np.ascontiguousarray(np.concatenate([base] * math.ceil(batch_size / len(base)))[:batch_size])


def all_logits(target: Target, tensors: list[np.ndarray | None], batch_size: int) -> np.ndarray:
    """Logits of every image, in order; NaN rows for images that could not be read."""
    fixed = target.preprocess.output_size is not None
    step = batch_size if fixed else 1
    rows: list[np.ndarray | None] = [None] * len(tensors)
    readable = [i for i, tensor in enumerate(tensors) if tensor is not None]
    for start in range(0, len(readable), step):
        positions = readable[start : start + step]
        logits = target.run(np.stack([tensors[i] for i in positions]))
        for row, position in enumerate(positions):
            rows[position] = np.asarray(logits[row], np.float32)
    classes = next((len(row) for row in rows if row is not None), 0)
    empty = np.full(classes, np.nan, np.float32)
    return np.stack([empty if row is None else row for row in rows]) if rows else np.zeros((0, 0), np.float32)


def measure(args: argparse.Namespace) -> dict:
    """Load, time and (optionally) compute the accuracy outputs; see the module docstring."""
    result: dict = {"ok": True}
    target = open_target(args.target)
    started = time.perf_counter()
    target.import_backend()
    parts = {"import": _elapsed_ms(started)}
    baseline = current_rss_bytes() or peak_rss_bytes()
    started = time.perf_counter()
    target.check_files()
    parts["checksum"] = _elapsed_ms(started)
    started = time.perf_counter()
    target.load(args.threads, device=args.run_on)
    parts["load"] = _elapsed_ms(started)
    result["load_parts_ms"] = parts
    paths = Path(args.images).read_text(encoding="utf-8").splitlines() if args.images else []
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    timing_paths = paths[: max(batch_sizes)]
    timing_tensors = _preprocessed(timing_paths, target)
    if args.runs > 0:
        first = timing_batch(timing_tensors, target, 1)
        started = time.perf_counter()
        target.run(first)
        result["first_inference_ms"] = _elapsed_ms(started)
        latency = {}
        for batch_size in batch_sizes:
            batch = timing_batch(timing_tensors, target, batch_size)
            for _ in range(args.warmup):
                target.run(batch)
            seconds = []
            for _ in range(args.runs):
                started = time.perf_counter()
                target.run(batch)
                seconds.append(time.perf_counter() - started)
            latency[str(batch_size)] = seconds
        result["latency_s"] = latency
    result["memory"] = {"baseline_rss_bytes": baseline, "peak_rss_bytes": peak_rss_bytes()}
    result["info"] = dataclasses.asdict(target.info())
    if args.outputs:
        tensors = timing_tensors + _preprocessed(paths[len(timing_paths) :], target)
        np.save(args.outputs, all_logits(target, tensors, max(batch_sizes)))
    if args.selfcheck:
        result["selfcheck"] = target.selfcheck()
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vitedge.benchmarks.worker", description=__doc__.split("\n")[0])
    parser.add_argument("target", help="artifact folder, or torch:MODEL")
    parser.add_argument("--result", required=True, help="write the JSON result here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-sizes", default="1")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10, help="timed calls per batch size (0: outputs only)")
    parser.add_argument("--images", help="a text file: one image path per line")
    parser.add_argument("--outputs", help="write the logits of every image in --images to this .npy")
    parser.add_argument("--selfcheck", action="store_true", help="also run the artifact's self-check (after the timings)")
    parser.add_argument("--run-on", metavar="DEVICE", help="device for artifacts whose format offers a choice")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = measure(args)
    except VitedgeError as error:
        result = {"ok": False, "error": str(error), "error_type": type(error).__name__}
    except Exception as error:  # anything else is still a row, with its traceback on stderr
        traceback.print_exc()
        message = " ".join(str(error).split())[:500]
        result = {"ok": False, "error": f"{type(error).__name__}: {message}", "error_type": type(error).__name__}
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
