"""TFLite accuracy per quantization recipe on a trained ViT: agreement with torch fp32, cosines, accuracy.

Trains the quickstart's ViT (``vitedge.converters.training.quickstart_recipe``, a minute or two on 2 cores)
unless ``--model`` names a Hugging Face folder, exports it with every candidate recipe of
:mod:`vitedge.converters.tflite.quantize`, runs the held-out shapes test split through each artifact
with the runtime's TFLite backend and compares with the torch fp32 model. The last column applies
the registry's tolerance for the precision (``vitedge.formats``), the check every conversion runs.

    python -m vitedge.benchmarks.studies.tflite_accuracy --out benchmarks/results/tflite_accuracy.md
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path


def _trained_source(model: str | None, echo):
    """The HF folder ``model``, or the quickstart ViT trained for all its epochs (no wall-clock cap:
    a loaded machine would stop the quickstart's 110 s budget early, with a barely trained model)."""
    from vitedge.converters.loading import SourceModel, architecture_summary, load_source
    from vitedge.converters.training.quickstart_recipe import (
        QUICKSTART_TRAIN,
        quickstart_preprocess_spec,
        run_quickstart_recipe,
    )
    from vitedge.runtime.manifest import SourceInfo

    if model:
        return load_source(model)
    echo("training the quickstart ViT …")
    run = run_quickstart_recipe(train_config=dataclasses.replace(QUICKSTART_TRAIN, max_seconds=None))
    echo(f"    test accuracy {run.test_accuracy:.1%} (torch fp32)")
    info = SourceInfo(model="quickstart recipe", weights="trained", architecture=architecture_summary(run.model))
    labels = {int(i): str(label) for i, label in run.model.config.id2label.items()}
    return SourceModel(run.model, quickstart_preprocess_spec(), labels, info)


def measure(model: str | None, recipe_names: list[str], *, per_class: int, threads: int, echo=print) -> list[str]:
    """Markdown lines: the source, then one table row per recipe."""
    from vitedge.benchmarks.studies.tflite_candidates import build_candidates
    from vitedge.converters.tflite.quantize import get_recipe
    from vitedge.converters.validate import artifact_outputs, compare_outputs, torch_outputs
    from vitedge.data.shapes import ShapesConfig, shapes_arrays
    from vitedge.formats import get_format
    from vitedge.metrics import topk_accuracy
    from vitedge.runtime.classifier import Classifier

    source = _trained_source(model, echo)
    inputs, labels = shapes_arrays("test", per_class, ShapesConfig(), source.preprocess)
    reference = torch_outputs(source, inputs)
    workdir = Path(tempfile.mkdtemp(prefix="vitedge-tflite-accuracy-"))
    candidates = build_candidates(source, workdir, [get_recipe(name) for name in recipe_names], echo=echo)
    fmt = get_format("tflite")
    torch_accuracy = topk_accuracy(reference["logits"], labels)
    lines = [
        f"Model: {source.info.model} ({source.info.weights}; {source.info.architecture.get('parameters', 0) / 1e6:.1f} M "
        f"parameters); {len(inputs)} held-out built-in shapes test images; torch fp32 top-1 accuracy {torch_accuracy:.1%}.",
        "",
        "| recipe | precision | used for | top-1 agreement | top-1 accuracy | min / mean logits cosine "
        "| min embedding cosine | registry tolerance |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for candidate in candidates:
        recipe = candidate.recipe
        head = f"| {recipe.name} | {recipe.precision} | {candidate.used_for}"
        if candidate.manifest is None:
            lines.append(f"{head} | - | - | - | - | failed: {candidate.error} |")
            continue
        echo(f"running {recipe.name} on {len(inputs)} images …")
        outputs = artifact_outputs(Classifier.open(candidate.folder, num_threads=threads, verify=False), inputs)
        report = compare_outputs(reference, outputs, fmt.support(recipe.precision).tolerance, inputs="test split")
        verdict = "meets" if report.passed else "misses: " + "; ".join(report.failures)
        lines.append(
            f"{head} | {report.top1_agreement:.1%} | {topk_accuracy(outputs['logits'], labels):.1%} "
            f"| {report.min_logits_cosine:.4f} / {report.mean_logits_cosine:.4f} | {report.min_embedding_cosine:.4f} "
            f"| {verdict} |"
        )
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    from vitedge.benchmarks.results_file import measured_on
    from vitedge.benchmarks.studies.tflite_candidates import candidates_parser, publish

    parser = candidates_parser(__doc__.split("\n")[0])
    parser.add_argument("--model", help="a Hugging Face folder (default: train the quickstart ViT)")
    parser.add_argument("--per-class", type=int, default=50, help="test images per class (default 50)")
    args = parser.parse_args(argv)
    lines = [
        "# TFLite (LiteRT): accuracy per quantization recipe on a trained ViT",
        "",
        measured_on(),
        "Each artifact runs through vitedge's TFLite backend; the reference is the same model in torch fp32 on the "
        "same preprocessed images.",
        "",
    ]
    lines += measure(args.model, args.recipes.split(","), per_class=args.per_class, threads=args.threads)
    publish(lines, args.out, "vitedge.benchmarks.studies.tflite_accuracy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
