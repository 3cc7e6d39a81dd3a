"""This machine's GEMM ceiling on ViT's own GEMM shapes, per backend and precision, and each artifact's share of it.

Measures the backends' own GEMM kernels (:mod:`.gemm_kernels`: onnxruntime, TFLite/XNNPACK, OpenVINO; fp32,
bf16, int8) on the encoder GEMMs of ViT-B/16-224 (197×768×768, 197×768×3072, 197×3072×768) and
ViT-L/16-384 (577×1024×1024, 577×1024×4096, 577×4096×1024), batch 1, pinned threads; writes the GMAC/s of
each and the ceiling (the best per compute precision) to ``gemm_ceiling.json``, then reports for every
artifact of the published results its effective GMAC/s and percentage of the ceiling
(:mod:`.ceiling`)::

    python -m vitedge.benchmarks.studies.gemm_ceiling --out benchmarks/results/gemm_ceiling.md

Timing: :func:`vitedge.benchmarks.latency.in_blocks`: each kernel in blocks of calls, the blocks interleaved
over rounds (round 1 of every kernel, then round 2, …); p50 over all timed calls. Blocks rather than
call-by-call round-robin: the runtimes' thread pools keep spinning after a call, and alternating them call
by call made each pay for the others (measured here: OpenVINO fp32 ran up to 3x slower round-robin).
The machine's load average is recorded: a ceiling measured while other work shared the CPU is too low.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
from pathlib import Path

from vitedge.benchmarks.latency import in_blocks
from vitedge.benchmarks.machine import machine_info
from vitedge.benchmarks.macs import vit_macs, weight_gemm_shapes
from vitedge.benchmarks.results import load_runs
from vitedge.benchmarks.results_file import emit, measured_on
from vitedge.benchmarks.studies.ceiling import SCHEMA, Ceiling, compute_precision, efficiency_section
from vitedge.benchmarks.studies.gemm_kernels import BACKENDS, Kernel, build_kernels
from vitedge.render import markdown_table

RESULTS = Path(__file__).resolve().parents[1] / "results"
MODELS = ("vit-base-patch16-224", "vit-large-patch16-384")
#: The published results whose artifacts are compared with the ceiling.
PUBLISHED = (RESULTS / "results.json", RESULTS / "new_formats_vit_b.json")


def model_shapes(models: tuple[str, ...]) -> list[tuple[int, int, int]]:
    """The encoder GEMM shapes of the named presets, in order, without repeats."""
    from vitedge.converters.presets import PRESETS

    shapes: list[tuple[int, int, int]] = []
    for name in models:
        shapes += [shape for shape in weight_gemm_shapes(PRESETS[name].config_kwargs()) if shape not in shapes]
    return shapes


def time_kernels(kernels: list[Kernel], *, rounds: int, runs: int, warmup: int) -> list[float]:
    """Milliseconds per call (p50) of each kernel, timed in blocks interleaved over ``rounds``."""
    stats = in_blocks({str(index): kernel.run for index, kernel in enumerate(kernels)}, rounds=rounds, warmup=warmup,
                      runs=runs)
    return [stats[str(index)].p50_ms for index in range(len(kernels))]


def measure(shapes: list[tuple[int, int, int]], *, threads: int, backends: tuple[str, ...], rounds: int, runs: int,
            warmup: int) -> tuple[list[dict], list[str]]:
    """Every backend's kernels on every shape: one record per kernel, and the backends that could not build."""
    records, problems = [], []
    for m, k, n in shapes:
        print(f"  {m}×{k}×{n}: building", file=sys.stderr, flush=True)
        kernels, failed = build_kernels(m, k, n, threads, backends)
        problems += failed
        print(f"  {m}×{k}×{n}: timing {len(kernels)} kernels", file=sys.stderr, flush=True)
        for kernel, ms in zip(kernels, time_kernels(kernels, rounds=rounds, runs=runs, warmup=warmup), strict=True):
            per_gemm = ms / kernel.copies
            records.append({"backend": kernel.backend, "precision": kernel.precision, "op": kernel.op, "m": m, "k": k,
                            "n": n, "copies": kernel.copies, "ms_per_gemm": per_gemm, "gmacs": m * k * n / per_gemm / 1e6})
        del kernels
    return records, problems


def kernel_table(ceiling: Ceiling) -> str:
    """Every kernel measured, with its share of the best kernel of its compute precision on the same shape."""
    rows = []
    for k in ceiling.kernels:
        best = ceiling.best(compute_precision(k["precision"]), (k["m"], k["k"], k["n"]))
        rows.append([f"{k['m']}×{k['k']}×{k['n']}", k["backend"], k["precision"], k["op"], f"{k['ms_per_gemm']:.3f}",
                     f"{k['gmacs']:.0f}", f"{k['gmacs'] / best['gmacs']:.2f}"])
    return markdown_table(rows, ["shape M×K×N", "backend", "precision", "kernel (after the backend's graph optimizations)",
                                 "ms per GEMM", "GMAC/s", "vs best of its precision"])


def ceiling_table(ceiling: Ceiling, shapes: list[tuple[int, int, int]]) -> str:
    """Best kernel per compute precision and shape, and the model-level ceiling of each preset."""
    from vitedge.converters.presets import PRESETS

    rows = []
    for precision in ("fp32", "bf16", "int8"):
        cells = []
        for shape in shapes:
            best = ceiling.best(precision, shape)
            cells.append("-" if best is None else f"{best['gmacs']:.0f} ({best['backend']})")
        rows.append([precision, *cells])
    lines = [markdown_table(rows, ["compute", *(f"{m}×{k}×{n}" for m, k, n in shapes)]), ""]
    floor_rows = []
    for name in MODELS:
        architecture = {"model_type": "vit", **PRESETS[name].config_kwargs()}
        macs = vit_macs(architecture)
        for precision in ("fp32", "bf16", "int8"):
            rate = ceiling.model_rate(architecture, precision)
            if rate is not None:
                floor_rows.append([name, f"{macs / 1e9:.2f}", precision, f"{rate:.0f}", f"{macs / rate / 1e6:.1f}"])
    lines += [markdown_table(floor_rows, ["model", "GMAC per image", "compute", "ceiling GMAC/s (model's GEMM mix)",
                                          "floor ms (all MACs at the ceiling)"])]
    return "\n".join(lines)


def report(ceiling: Ceiling, ceiling_path: Path, shapes, problems: list[str], published: list[Path], command: str,
           measured: str) -> str:
    """The Markdown report: every kernel, the ceiling, and the published artifacts' share of it."""
    lines = ["# GEMM ceiling: what this CPU's best kernels reach on ViT's GEMMs", "", measured,
             f"Batch 1, {ceiling.threads} threads; each kernel model holds several independent GEMMs of one shape (its "
             "own input and weights each; `copies` in gemm_ceiling.json) so per-call overhead is spread as over a "
             "model's layers. Timings: each kernel in blocks of calls, the blocks interleaved over rounds; p50 of all "
             "timed calls.", "",
             kernel_table(ceiling), "", "## The ceiling (best per compute precision)", "", ceiling_table(ceiling, shapes), ""]
    lines += [f"- not measured: {problem}" for problem in problems]
    runs = [run for path in published if path.is_file() for run in load_runs(path)]
    section = efficiency_section(runs, ceiling_path)
    lines += ["", section.replace("## How close", "## Published artifacts: how close", 1), "",
              f"Reproduce: `{command}`", ""]
    return "\n".join(lines)


def save(records: list[dict], threads: int, load_average: float | None, path: Path) -> Ceiling:
    document = {"schema": SCHEMA, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "machine": machine_info(), "load_average": load_average, "threads": threads, "kernels": records}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return Ceiling.load(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="presets whose encoder GEMM shapes are measured")
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"any of {', '.join(BACKENDS)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=10, help="timed calls per kernel per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per kernel per round")
    parser.add_argument("--json", type=Path, default=RESULTS / "gemm_ceiling.json", help="where the measured kernels go")
    parser.add_argument("--results", type=Path, nargs="*", default=list(PUBLISHED),
                        help="results files whose artifacts are compared with the ceiling")
    parser.add_argument("--report-only", action="store_true", help="re-render from --json without measuring")
    parser.add_argument("--out", type=Path, help="write the Markdown report here (default: print it)")
    args = parser.parse_args(argv)
    shapes = model_shapes(tuple(args.models.split(",")))
    problems: list[str] = []
    if args.report_only:
        ceiling = Ceiling.load(args.json)
    else:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        records, problems = measure(shapes, threads=args.threads, backends=tuple(args.backends.split(",")),
                                    rounds=args.rounds, runs=args.runs, warmup=args.warmup)
        ceiling = save(records, args.threads, load, args.json)
    command = "python -m vitedge.benchmarks.studies.gemm_ceiling " + " ".join(sys.argv[1:] if argv is None else argv)
    measured = measured_on()
    if args.report_only:
        load = "unknown" if ceiling.load_average is None else f"{ceiling.load_average:.1f}"
        measured = (f"Kernels measured {ceiling.created} on {ceiling.cpu} (load average at the start: {load}); "
                    f"rendered again from {args.json}.")
    emit(report(ceiling, args.json, shapes, problems, args.results, command.strip(), measured), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
