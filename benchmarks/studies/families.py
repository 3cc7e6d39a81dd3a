"""The model families after conversion: accuracy per format and precision, then latency, size and memory.

    python -m vitedge.benchmarks.studies.families --part accuracy --out benchmarks/results/families_accuracy.md
    python -m vitedge.benchmarks.studies.families --part latency --out benchmarks/results/families_latency.md
    python -m vitedge.benchmarks.studies.families --convert-only     # train and convert only (no timing)
    python -m vitedge.benchmarks.studies.families --quick --out /tmp/families.md   # smoke test: tiny presets

Part 1 (:mod:`.families_accuracy`): each family's ``-mini`` preset trained with ``vitedge finetune`` on the
built-in shapes, converted to every (format, precision) the registry claims for the family, top-1 on the
held-out test split beside the fine-tuned model in PyTorch (cells the registry does not claim but does
not refuse are measured too, and marked). Part 2 (:mod:`.families_latency`): edge-sized
presets of every family (DeiT-Tiny and -Small, MobileViT-S, MobileViT V2 1.0, Swin-T, DINOv2-S, BEiT-B,
ViT-B) converted to the registry's cells (fp32 and each format's first int8 precision) and timed with
the benchmark harness at batch 1. The registry is read when the study runs (:mod:`.families_matrix`).
Models, data and artifacts are cached in ``--work`` and reused (an artifact only when made from the same
weights; ``--fresh`` after changing a preset); the runs are saved next to ``--out`` as JSON
(``vitedge report families.json -o x.html`` renders them).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from vitedge.benchmarks.results import BenchRun, save_runs
from vitedge.benchmarks.results_file import emit, measured_on
from vitedge.benchmarks.studies import families_accuracy as accuracy
from vitedge.benchmarks.studies import families_latency as latency
from vitedge.benchmarks.studies import families_report as report
from vitedge.formats import FAMILIES, FORMATS

RESULTS = Path(__file__).resolve().parents[1] / "results"
#: The default --out of each --part: the parts need different conditions (part 2 a quiet machine), so each has a file.
OUT_NAMES = {"accuracy": "families_accuracy.md", "latency": "families_latency.md", "all": "families.md"}
QUICK_FAMILIES, QUICK_FORMATS = ("vit", "mobilevit"), ("onnx",)
PARTS = ("accuracy", "latency", "all")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _names(text: str | None, known, what: str, parser: argparse.ArgumentParser) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        parser.error(f"--{what}: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vitedge.benchmarks.studies.families",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="the Markdown report, runs in the same name .json (default: "
                                                 f"benchmarks/results/{OUT_NAMES['accuracy']}, {OUT_NAMES['latency']} "
                                                 f"or {OUT_NAMES['all']} by --part)")
    parser.add_argument("--work", type=Path, default=Path(".bench-work/families"),
                        help="data, trained models and artifacts (reused; --quick uses WORK/quick)")
    parser.add_argument("--part", choices=PARTS, default="all", help="accuracy (part 1), latency (part 2) or all")
    parser.add_argument("--families", help=f"comma-separated (default: every family: {', '.join(FAMILIES)})")
    parser.add_argument("--formats", help=f"comma-separated (default: every format: {', '.join(FORMATS)})")
    parser.add_argument("--every-precision", action="store_true",
                        help="part 2: every precision (default: fp32 and each format's first int8 precision)")
    parser.add_argument("--threads", type=int, default=2, help="training and inference threads (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: tiny presets, tiny data, 1 epoch (default --families {','.join(QUICK_FAMILIES)} "
                             f"--formats {','.join(QUICK_FORMATS)})")
    parser.add_argument("--convert-only", action="store_true", help="train and convert, measure nothing (fill the cache)")
    parser.add_argument("--fresh", action="store_true", help="train and convert again even when --work has the result")
    return parser


def run_accuracy(args: argparse.Namespace, work: Path, command: str) -> list[report.FamilyAccuracy]:
    """Part 1: train, convert and measure each family (or only train and convert with --convert-only)."""
    from vitedge.converters.presets import get_preset

    plan = accuracy.QUICK_ACCURACY if args.quick else accuracy.AccuracyPlan()
    data = accuracy.write_splits(plan, work)
    measured = []
    for family in args.families:
        model = accuracy.train_family(family, plan, data, work, threads=args.threads, fresh=args.fresh, say=_say)
        cells, built = accuracy.build_family(family, model, work, formats=args.formats,
                                             every_precision=not args.quick, fresh=args.fresh, say=_say)
        if args.convert_only:
            continue
        _say(f"{FAMILIES[family]}: top-1 of {len(built) + 1} targets on {data / 'test'}")
        run = accuracy.measure_family(family, model, built, data, threads=args.threads, command=command)
        metrics = model / "metrics.jsonl"
        epochs = len(metrics.read_text().splitlines()) if metrics.is_file() else 0
        preset = plan.preset(family).removeprefix("preset:")
        measured.append(report.FamilyAccuracy(family, preset, get_preset(preset).preprocess(),
                                              accuracy.training_record(model), epochs, cells, run))
    return measured


def run_latency(args: argparse.Namespace, work: Path, command: str) -> list[report.ModelLatency]:
    """Part 2: convert and time each edge-sized model of the chosen families."""
    models = latency.quick_models(args.families) if args.quick else tuple(
        model for model in latency.EDGE_MODELS if model.family in args.families)
    settings = latency.latency_settings(args.threads, quick=args.quick)
    measured = []
    for model in models:
        cells, slots = latency.build_model(model, work / "latency", formats=args.formats,
                                           every_precision=args.every_precision, fresh=args.fresh, say=_say)
        if args.convert_only:
            continue
        _say(f"{model.title}: timing {len(slots) + 1} targets ({report.settings_text(settings)})")
        run = latency.measure_model(model, slots, settings, command=command)
        measured.append(report.ModelLatency(model.title, model.preset, model.family, model.note, cells, run))
    return measured


def render(args: argparse.Namespace, families: list[report.FamilyAccuracy], models: list[report.ModelLatency]) -> str:
    """The whole Markdown report."""
    plan = accuracy.QUICK_ACCURACY if args.quick else accuracy.AccuracyPlan()
    lines = ["# Model families after conversion: accuracy, latency, size, memory", "", measured_on(), "",
             f"Reproduce: `{args.command}` "
             "(`--convert-only` first fills the cache in `.bench-work/families/` without timing anything)."
             + (" **A --quick smoke test: tiny models, a handful of images; the numbers mean nothing.**"
                if args.quick else ""), ""]
    if families:
        shapes = plan.shapes
        lines += [
            "## 1. Accuracy after conversion", "",
            f"Each family's `{plan.preset_suffix}` preset (its ops, not a published size) fine-tuned from random init with "
            f"`vitedge finetune` on the built-in shapes ({shapes.num_classes} classes, difficulty {shapes.difficulty}): "
            f"{plan.train_per_class} training and {plan.val_per_class} validation images per class, AdamW lr "
            f"{plan.learning_rate:g}, batch 32, up to {_count(plan.epochs, 'epoch')} or a time budget the schedule "
            f"anneals to ({plan.max_seconds:.0f} s on {_count(args.threads, 'thread')} by default; a model already in "
            "the cache is reused as it was trained: the table gives each one's budget and threads); the best "
            "validation epoch is kept. Each model preprocesses with its family's processor. Then every "
            f"(format, precision) the registry claims for the family, each artifact run by vitedge's runtime in its own "
            f"process on the {plan.test_per_class * shapes.num_classes} held-out test images.", "",
            *report.accuracy_models_table(families),
            "Cells: top-1 on the test split (top-1 agreement with PyTorch fp32). `sim`: Core ML cannot run here; the "
            "torch simulation with the package's own weights `vitedge convert` validates with. `✗`: the artifact "
            "missed its precision's validation tolerance (kept for this table; `vitedge convert` would refuse it). "
            "`refused`: the registry says the format cannot express the family (`vitedge convert` refuses it); "
            "`-`: not a precision of the format.", "",
            *report.accuracy_format_tables(families)]
    if models:
        lines += ["## 2. Latency, size and peak memory (random weights)", "",
                  f"Presets with the published architectures and random weights, {report.settings_text(models[0].run.settings)}; "
                  "the inputs are noise (latency does not depend on them). p50 ms at batch 1 per format and precision "
                  "(`*`: not claimed by the registry for the family, converted and validated all the same); "
                  "peak RSS is the worker process's high-water mark (Python and libraries included).", "",
                  *report.latency_matrix(models), *(line for model in models for line in report.latency_details(model))]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.families = _names(args.families, FAMILIES, "families", parser) or list(QUICK_FAMILIES if args.quick else FAMILIES)
    args.formats = _names(args.formats, FORMATS, "formats", parser) or (list(QUICK_FORMATS) if args.quick else None)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "0")
    work = (args.work / "quick" if args.quick else args.work).resolve()
    command = shlex.join(["python", "-m", "vitedge.benchmarks.studies.families", *(sys.argv[1:] if argv is None else argv)])
    args.command = command
    args.out = args.out or RESULTS / OUT_NAMES[args.part]
    families = run_accuracy(args, work, command) if args.part in ("accuracy", "all") else []
    models = run_latency(args, work, command) if args.part in ("latency", "all") else []
    if args.convert_only:
        _say(f"models and artifacts are ready in {work}")
        return 0
    runs: list[BenchRun] = [entry.run for entry in families] + [model.run for model in models]
    save_runs(runs, args.out.with_suffix(".json"))
    emit(render(args, families, models), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
