"""TFLite size and latency per quantization recipe: the measurements that chose each precision's recipe.

Exports one model (ViT-B/16-224 with random weights by default: latency does not depend on the
weights) with every candidate recipe of :mod:`vitedge.converters.tflite.quantize`, then times each
artifact through the runtime's TFLite backend (XNNPACK) at batch 1 with pinned threads, round-robin
so that a shared machine's drift lands on all of them alike. Ratios to LiteRT fp32 are what to quote.

    python -m vitedge.benchmarks.studies.tflite_latency --out benchmarks/results/tflite.md
    python -m vitedge.benchmarks.studies.tflite_latency --large --out benchmarks/results/tflite.md   # + ViT-L/16-384 (~8 GB, minutes)
"""

from __future__ import annotations

import resource
import tempfile
from pathlib import Path

LARGE_MODEL = "preset:vit-large-patch16-384"
LARGE_RECIPES = ("float", "aeq-dynamic-wi8")


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kilobytes on Linux


def measure(model: str, recipe_names: list[str], *, threads: int, runs: int, warmup: int,
            calibration_samples: int) -> list[str]:
    """Markdown lines: one table row per recipe."""
    from vitedge.benchmarks.latency import interleaved
    from vitedge.benchmarks.studies.tflite_candidates import build_candidates
    from vitedge.converters.export_types import ExportOptions
    from vitedge.converters.loading import load_source
    from vitedge.converters.tflite.quantize import get_recipe

    source = load_source(model)
    workdir = Path(tempfile.mkdtemp(prefix="vitedge-tflite-latency-"))
    options = ExportOptions(calibration_samples=calibration_samples)
    candidates = build_candidates(source, workdir, [get_recipe(name) for name in recipe_names], options)
    peak = _peak_rss_gb()
    built = [c for c in candidates if c.manifest is not None]
    calls = {}
    for candidate in built:
        backend, sample = candidate.open(threads), candidate.sample_input()
        calls[candidate.recipe.name] = lambda backend=backend, sample=sample: backend.run(sample)
    print(f"timing {len(calls)} artifacts, {runs} runs each, round-robin …", flush=True)
    stats = interleaved(calls, warmup=warmup, runs=runs)
    fp32 = next((c for c in built if c.recipe.precision == "fp32"), None)
    fp32_ms = stats[fp32.recipe.name].p50_ms if fp32 else None
    lines = [
        f"### {model}",
        "",
        f"Peak memory of the converting process: {peak:.1f} GB.",
        "",
        "| recipe | precision | quantizer | weights / activations | used for | size MB | size vs fp32 "
        "| p50 ms | p90 ms | p50 vs fp32 | export s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for candidate in candidates:
        recipe = candidate.recipe
        head = f"| {recipe.name} | {recipe.precision} | {recipe.quantizer} | {recipe.weights} / {recipe.activations}"
        if candidate.manifest is None:
            lines.append(f"{head} | - | - | - | - | - | - | {candidate.export_seconds:.0f} (failed: {candidate.error}) |")
            continue
        s = stats[recipe.name]
        size_ratio = f"{candidate.size_bytes / fp32.size_bytes:.0%}" if fp32 else "-"
        speed_ratio = f"{s.p50_ms / fp32_ms:.2f}x" if fp32_ms else "-"
        lines.append(
            f"{head} | {candidate.used_for} | {candidate.size_bytes / 1e6:.1f} "
            f"| {size_ratio} | {s.p50_ms:.1f} | {s.p90_ms:.1f} | {speed_ratio} | {candidate.export_seconds:.0f} |"
        )
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    from vitedge.benchmarks.results_file import measured_on
    from vitedge.benchmarks.studies.tflite_candidates import candidates_parser, publish

    parser = candidates_parser(__doc__.split("\n")[0])
    parser.add_argument("--model", default="preset:vit-base-patch16-224")
    parser.add_argument("--large", action="store_true", help=f"also {LARGE_MODEL} (fp32 and int8-dynamic; ~8 GB, minutes)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--calibration-samples", type=int, default=16, help="for static recipes (latency does not depend on it)")
    args = parser.parse_args(argv)
    lines = [
        "# TFLite (LiteRT): size and latency per quantization recipe",
        "",
        measured_on(),
        f"Batch 1, {args.threads} threads (XNNPACK), {args.warmup} warm-up runs, {args.runs} timed runs each, "
        "interleaved round-robin, through vitedge's TFLite backend (input quantization and output "
        "dequantization included). The machine is shared with other work: quote the ratios, not the milliseconds.",
        "",
    ]
    lines += measure(args.model, args.recipes.split(","), threads=args.threads, runs=args.runs, warmup=args.warmup,
                     calibration_samples=args.calibration_samples)
    if args.large:
        lines += measure(LARGE_MODEL, list(LARGE_RECIPES), threads=args.threads, runs=max(5, args.runs // 4),
                         warmup=1, calibration_samples=args.calibration_samples)
    publish(lines, args.out, "vitedge.benchmarks.studies.tflite_latency")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
