"""Token merging (ToMe): speed against top-1 for R = 0..max, per format and precision, in one run each.

    python -m vitedge.benchmarks.studies.token_merging --out benchmarks/results/token_merging.md
    python -m vitedge.benchmarks.studies.token_merging --large --out benchmarks/results/token_merging.md  # + ViT-L/16-384

For each model and each FORMAT:PRECISION (ONNX and TFLite int8-dynamic by default: the fastest CPU artifacts),
the model is converted with ``--token-merging R`` for every R of its curve (artifacts cached in ``--work``),
then the artifacts of one model and precision are benchmarked together with the harness (a fresh worker
process per artifact, rounds interleaved, batch 1, pinned threads) on the same images. Per R: the tokens
left, p50 latency and the speed-up over R = 0 (same format, precision and run), top-1 on labelled test
images (trained models) and the top-1 agreement with the R = 0 artifact.

Models: the quickstart model (trained on shapes: 17 tokens, 4 blocks, so R = 0..4); the same model
fine-tuned at 128 px (``vitedge finetune --image-size 128``: its 8-px patches make 257 tokens, ViT-B's
order, so merging has something to save; trained once on the quickstart's dataset and cached in
``--work``; ``--no-many-tokens`` skips it); any ``--trained`` Hugging Face folder (e.g. the distillation
bench's student); and ViT-B/16-224 with random weights (latency only: its top-1 means nothing; R = 0, 2,
…, 16); ``--large`` adds ViT-L/16-384 (R = 0, 4, …, 24).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vitedge.benchmarks.bench import BenchTarget, default_threads, run_bench
from vitedge.benchmarks.bench_data import folder_data
from vitedge.benchmarks.progress import Progress
from vitedge.benchmarks.results import BenchRun, BenchSettings, save_runs
from vitedge.benchmarks.results_file import emit, measured_on

DEFAULT_TARGETS = "onnx:int8-dynamic,tflite:int8-dynamic"
BASE, LARGE = "preset:vit-base-patch16-224", "preset:vit-large-patch16-384"
#: The issue's target: at least this speed-up at most this many points of top-1 below R = 0.
TARGET_SPEEDUP, TARGET_DROP_POINTS = 1.5, 1.0
#: Inputs each conversion is validated on (against the token-merged torch model).
VALIDATION_SAMPLES = 32


#: The quickstart model has 17 tokens, too few for merging to pay; fine-tuned at this size it has 257.
MANY_TOKENS_SIZE = 128


@dataclass(frozen=True)
class Curve:
    """One model's curve: which R values, on which images (None: timing only), how hard to time it."""

    title: str
    model: str
    r_values: tuple[int, ...]
    settings: BenchSettings
    data_folder: Path | None = None
    samples: int = 500

    @property
    def slug(self) -> str:
        return Path(self.model.removeprefix("preset:")).name


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def largest_r(model: str) -> int:
    """The largest constant R the model's tokens allow (every patch token merged at most once)."""
    from vitedge.converters import load_source
    from vitedge.converters.token_merging.model import model_tokens, plan_for
    from vitedge.converters.token_merging.plan import max_r

    source = load_source(model)
    tokens, blocks = model_tokens(source)
    return max_r(tokens, blocks, plan_for(source, 0).protected)


def convert_curve(curve: Curve, fmt: str, precision: str, work: Path, *, fresh: bool = False) -> dict[int, Path]:
    """The artifact of every R of ``curve`` at ``fmt``/``precision``, converted once and reused from ``work``
    (``fresh``: converted again)."""
    from vitedge.converters import ExportOptions, convert, load_source
    from vitedge.errors import VitedgeError

    source, folders = None, {}
    for r in curve.r_values:
        folder = work / curve.slug / f"{fmt}-{precision}-r{r}"
        if fresh or not (folder / "manifest.json").is_file():
            source = source or load_source(curve.model)
            _say(f"converting {curve.title} to {fmt} {precision} with --token-merging {r}")
            try:  # written even where it misses the tolerance: the row says so, the curve shows the cost
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    convert(source, to=fmt, precision=precision, out=folder, overwrite=True,
                            options=ExportOptions(token_merging=r), validation_samples=VALIDATION_SAMPLES,
                            accept_failed_validation=True)
            except VitedgeError as error:
                _say(f"  failed: {error}")
                continue
        folders[r] = folder
    return folders


def measure_curve(curve: Curve, fmt: str, precision: str, folders: dict[int, Path], command: str) -> BenchRun:
    """Benchmark one curve's artifacts in one run; agreement is against the R = 0 artifact."""
    data = folder_data(curve.data_folder, samples=curve.samples) if curve.data_folder else None
    targets = [BenchTarget(str(folder), name=f"R = {r}") for r, folder in sorted(folders.items())]
    reference = str(folders[0]) if 0 in folders and data is not None else None
    _say(f"{curve.title}, {fmt} {precision}: benchmarking {len(targets)} artifacts, {curve.settings.rounds} rounds")
    return run_bench(targets, settings=curve.settings, data=data, reference=reference, progress=Progress(0),
                     command=command, title=f"{curve.title}: {fmt} {precision}")


def _manifest(target: str) -> dict:
    import json

    return json.loads((Path(target) / "manifest.json").read_text())


def curve_rows(run: BenchRun) -> list[dict]:
    """One dict per R: tokens, latency, speed-up over R = 0, top-1, its drop, agreement (None where unmeasured)."""
    rows = []
    for result in run.results:
        manifest = _manifest(result.target)
        merging, validation = manifest.get("token_merging") or {}, manifest.get("validation") or {}
        latency = result.latency[0].stats if result.status == "ok" and result.latency else None
        accuracy = result.accuracy
        against = merging.get("against_unmerged") or {}
        rows.append({"r": int(result.name.removeprefix("R = ")), "status": result.status, "error": result.error,
                     "validated": validation.get("passed"), "min_cosine": validation.get("min_logits_cosine"),
                     "tokens": merging.get("final_tokens"), "p50_ms": latency.p50_ms if latency else None,
                     "p90_ms": latency.p90_ms if latency else None,
                     "top1": accuracy.top1 if accuracy else None,
                     "agreement": accuracy.top1_agreement if accuracy else None,
                     "torch_agreement": against.get("top1_agreement")})
    return with_ratios(rows)


def with_ratios(rows: list[dict]) -> list[dict]:
    """``rows`` with each one's speed-up over R = 0 and its top-1 drop in points (None where unmeasured)."""
    base = next((row for row in rows if row["r"] == 0), None)
    for row in rows:
        row["speedup"] = base["p50_ms"] / row["p50_ms"] if base and base["p50_ms"] and row["p50_ms"] else None
        row["drop"] = 100 * (base["top1"] - row["top1"]) if base and base["top1"] is not None and row["top1"] is not None else None
    return rows


def _cell(value, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def curve_table(rows: Sequence[dict]) -> list[str]:
    lines = ["| R | tokens after the last block | p50 ms | p90 ms | speed-up vs R = 0 | top-1 | top-1 drop (points) "
             "| agreement with R = 0 | torch: agreement with unmerged | validation (min logits cosine) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if row["status"] != "ok":
            lines.append(f"| {row['r']} | - | {row['status']}: {row['error']} | | | | | | | |")
            continue
        tokens = "all (unmerged)" if row["tokens"] is None else row["tokens"]
        lines.append(f"| {row['r']} | {tokens} | {_cell(row['p50_ms'], '.1f')} | {_cell(row['p90_ms'], '.1f')} "
                     f"| {_cell(row['speedup'], '.2f', 'x')} | {_cell(row['top1'], '.1%')} | {_cell(row['drop'], '.1f')} "
                     f"| {_cell(row['agreement'], '.1%')} | {_cell(row['torch_agreement'], '.1%')} "
                     f"| {_validated(row)} |")
    return lines


def _validated(row: dict) -> str:
    if row["validated"] is None:
        return "-"
    return f"{'passed' if row['validated'] else 'FAILED'} ({row['min_cosine']:.4f})"


def verdict(rows: Sequence[dict]) -> str:
    """The best speed-up within the top-1 budget among validated artifacts (trained models), or the speed-up at the
    largest R (latency only)."""
    measured = [row for row in rows if row["speedup"] is not None]
    if not measured:
        return "no timings"
    if all(row["drop"] is None for row in measured):
        best = max(measured, key=lambda row: row["r"])
        return f"latency only: {best['speedup']:.2f}x at R = {best['r']}"
    # an artifact that failed its validation is one `vitedge convert` refuses: it does not count
    within = [row for row in measured if row["drop"] is not None and row["drop"] <= TARGET_DROP_POINTS
              and row["validated"] is not False]
    if not within:
        return f"no validated R stays within {TARGET_DROP_POINTS:g} point of top-1"
    best = max(within, key=lambda row: row["speedup"])
    met = "meets" if best["speedup"] >= TARGET_SPEEDUP else "misses"
    return (f"best within {TARGET_DROP_POINTS:g} point of top-1: R = {best['r']}, {best['speedup']:.2f}x "
            f"({best['drop']:.1f} points); {met} the {TARGET_SPEEDUP:g}x target")


def many_token_model(quickstart: Path, work: Path, *, threads: int) -> Path:
    """The quickstart model fine-tuned at :data:`MANY_TOKENS_SIZE` px (trained once, then reused from ``work``):
    ``vitedge finetune MODEL --image-size 128 --epochs 3 --lr 3e-4 --batch-size 32`` on the quickstart's dataset."""
    from vitedge.benchmarks.studies.families_accuracy import AccuracyPlan, write_splits
    from vitedge.converters.training.finetune import finetune
    from vitedge.converters.training.loop import LoopConfig
    from vitedge.converters.training.recipe import TrainConfig
    from vitedge.converters.training.run import RunSetup, TrainingOptions

    out = work / f"quickstart-{MANY_TOKENS_SIZE}px"
    if (out / "vitedge_training.json").is_file():
        return out
    data = write_splits(AccuracyPlan(), work)  # the quickstart's dataset: same shapes, classes and seed
    _say(f"fine-tuning {quickstart / 'model'} at {MANY_TOKENS_SIZE} px on {data / 'train'} (once)")
    recipe = TrainConfig(epochs=3, batch_size=32, learning_rate=3e-4, num_threads=threads, max_seconds=1200)
    options = TrainingOptions(loop=LoopConfig(train=recipe, progress=False, device="cpu"))
    finetune(str(quickstart / "model"), data / "train", out, options,
             RunSetup(val_data=data / "val", image_size=MANY_TOKENS_SIZE, overwrite=True))
    return out


def curves(args: argparse.Namespace) -> list[Curve]:
    """The quickstart model (and --trained ones) for accuracy and latency, ViT-B (and ViT-L) for latency."""
    from vitedge.benchmarks.studies.publish import small_model

    threads = args.threads or default_threads()

    def settings(runs: int, warmup: int) -> BenchSettings:
        return BenchSettings(threads=threads, batch_sizes=(1,), warmup=1 if args.quick else warmup,
                             runs=3 if args.quick else runs, rounds=1 if args.quick else 3, timeout_s=3600)

    def every(model: str, step: int, chosen: Sequence[int] | None = None) -> tuple[int, ...]:
        largest = largest_r(model)
        if chosen:
            return tuple(r for r in chosen if r <= largest)
        values = tuple(range(0, largest + 1, step)) + ((largest,) if largest % step else ())
        return (0, largest) if args.quick else values

    quickstart = small_model(args.quickstart, args.work.parent)
    test = quickstart / "data" / "test"
    chosen = [] if args.no_quickstart else [
        Curve("quickstart ViT (trained on shapes)", str(quickstart / "model"), every(str(quickstart / "model"), 1),
              settings(60, 5), test, 50 if args.quick else 500)]
    if not (args.no_many_tokens or args.quick):
        model = str(many_token_model(quickstart, args.work, threads=threads))
        chosen.append(Curve(f"quickstart ViT fine-tuned at {MANY_TOKENS_SIZE} px (257 tokens)", model,
                            every(model, 8), settings(30, 3), test, 500))
    chosen += [Curve(f"{Path(model).name} (trained)", model, every(model, 1), settings(60, 5), args.data or test,
                     50 if args.quick else 500) for model in args.trained]
    if not args.no_base:
        chosen.append(Curve("ViT-B/16-224 (random weights, latency only)", BASE, every(BASE, 2, args.latency_r),
                            settings(45, 3)))
    if args.large:
        chosen.append(Curve("ViT-L/16-384 (random weights, latency only)", LARGE, every(LARGE, 4, args.latency_r),
                            settings(9, 2)))
    return chosen


def report(sections: list[tuple[Curve, str, list[dict]]], command: str) -> str:
    lines = ["# Token merging (ToMe): speed against top-1", "", measured_on(), "",
             f"`{command}`", "",
             "Each artifact is `vitedge convert MODEL --to FORMAT --precision P --token-merging R` (validated against "
             "the token-merged torch model), timed by the harness at batch 1 with "
             f"{sections[0][0].settings.threads if sections else '?'} pinned threads: fresh worker processes, rounds "
             "interleaved across the R values of one table, p50/p90 over all timed calls. **speed-up** is R = 0's p50 "
             "over the row's (same format, precision and run); **top-1** is on the labelled test images; **agreement** "
             "is the share of images whose top-1 class is R = 0's; the last column is the token-merged torch fp32 "
             "model against the unmerged one on the conversion's validation images (the manifest's "
             "`token_merging.against_unmerged`); **validation** is the artifact against the token-merged torch model "
             "at its precision's tolerance (written here even when it fails, to show the cost; `vitedge convert` "
             "refuses a failed one unless `--accept-failed-validation`). Quote ratios, not milliseconds: a shared "
             "machine moves both.", ""]
    for curve, target, rows in sections:
        lines += [f"## {curve.title}: {target}", "", f"Model: `{curve.model}`; R = {', '.join(map(str, curve.r_values))}.",
                  "", *curve_table(rows), "", f"**{verdict(rows)}**", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vitedge.benchmarks.studies.token_merging",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="the Markdown report (a .json of the runs goes beside it)")
    parser.add_argument("--work", type=Path, default=Path(".bench-work/token_merging"), help="artifacts (reused)")
    parser.add_argument("--targets", default=DEFAULT_TARGETS, help=f"FORMAT:PRECISION,… (default {DEFAULT_TARGETS})")
    parser.add_argument("--quickstart", type=Path, help="the quickstart output folder (default: made under --work's parent)")
    parser.add_argument("--trained", action="append", default=[], help="another trained HF folder (repeatable)")
    parser.add_argument("--data", type=Path, help="labelled ImageFolder for --trained models (default: the quickstart's)")
    parser.add_argument("--no-quickstart", action="store_true", help="skip the quickstart model")
    parser.add_argument("--no-many-tokens", action="store_true",
                        help=f"skip the quickstart model fine-tuned at {MANY_TOKENS_SIZE} px (trained once, minutes)")
    parser.add_argument("--no-base", action="store_true", help="skip ViT-B/16-224")
    parser.add_argument("--latency-r", type=lambda text: [int(r) for r in text.split(",")],
                        help="R values of ViT-B/L, e.g. 0,8,12,16 (default: ViT-B every 2, ViT-L every 4)")
    parser.add_argument("--large", action="store_true", help="also ViT-L/16-384 (long; on a quiet machine)")
    parser.add_argument("--threads", type=int, help="pinned threads (default: the CPUs this process may use)")
    parser.add_argument("--quick", action="store_true", help="R = 0 and the largest only, few runs: a smoke test")
    parser.add_argument("--convert-only", action="store_true", help="only make the artifacts in --work")
    parser.add_argument("--fresh", action="store_true", help="convert again even when --work has the artifact")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "0")
    args.work = args.work.resolve()
    command = shlex.join(["python", "-m", "vitedge.benchmarks.studies.token_merging",
                          *(sys.argv[1:] if argv is None else argv)])
    targets = [tuple(item.split(":", 1)) for item in args.targets.split(",")]
    sections, runs = [], []
    for curve in curves(args):
        for fmt, precision in targets:
            folders = convert_curve(curve, fmt, precision, args.work, fresh=args.fresh)
            if args.convert_only or not folders:
                continue
            run = measure_curve(curve, fmt, precision, folders, command)
            runs.append(run)
            sections.append((curve, f"{fmt} {precision}", curve_rows(run)))
    if args.convert_only:
        return 0
    if args.out:
        save_runs(runs, args.out.with_suffix(".json"))
    emit(report(sections, command), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
