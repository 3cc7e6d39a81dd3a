"""Core ML precisions measured: package size and conversion time on ViT-B/16-224, simulated accuracy on a trained ViT.

Sizes come from converting ``preset:vit-base-patch16-224`` (random-init weights: the size does not
depend on the values) at every Core ML precision of the registry. Accuracy comes from the
quickstart recipe's trained ViT, converted at every precision and validated against torch fp32 on
the held-out test split by the same simulation ``vitedge convert`` uses on Linux (the package's own
decompressed weights in torch, fp16 compute): top-1 agreement and cosines, and whether the
registry's tolerance holds.

    python -m vitedge.benchmarks.studies.coreml_sizes --out benchmarks/results/coreml.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from vitedge.benchmarks.results_file import emit, measured_on
from vitedge.formats import FORMATS

FORMAT = FORMATS["coreml"]
SIZE_MODEL = "preset:vit-base-patch16-224"


def _package_bytes(package: Path) -> int:
    return sum(p.stat().st_size for p in package.rglob("*") if p.is_file())


def size_rows(model: str, workdir: Path) -> list[str]:
    """One Markdown row per precision: package size, compressed weight bits, conversion time."""
    from vitedge.converters import ExportOptions, load_source
    from vitedge.converters.coreml.export import export_coreml
    from vitedge.converters.coreml.mlpackage import read_package

    source = load_source(model)
    rows, reference = [], None
    for precision in FORMAT.precision_names:
        folder = workdir / f"size-{precision}"
        folder.mkdir()
        started = time.perf_counter()
        exported = export_coreml(source, folder, ExportOptions(precision=precision))
        seconds = time.perf_counter() - started
        size = _package_bytes(folder / exported.entry)
        reference = reference or size
        compressed = read_package(folder / exported.entry).compressed
        dense_fp32_bits = sum(w.dense_bits * 32 // 16 for w in compressed)
        bits = f"{32 * sum(w.stored_bits for w in compressed) / dense_fp32_bits:.2f}" if compressed else "-"
        rows.append(
            f"| {precision} | {exported.recipe['minimum_deployment_target']} | {size / 1e6:.1f} MB | "
            f"{size / reference:.3f} | {len(compressed)} | {bits} | {seconds:.0f} s |"
        )
        print(rows[-1], flush=True)
    return rows


def accuracy_rows(workdir: Path, samples: int) -> tuple[list[str], str]:
    """One Markdown row per (precision, input type) on the trained quickstart model, and a description of it."""
    from vitedge.converters import ExportOptions
    from vitedge.converters.coreml.export import export_coreml
    from vitedge.converters.coreml.validate import validate_coreml
    from vitedge.converters.loading import SourceModel, architecture_summary
    from vitedge.converters.stages import describe
    from vitedge.converters.training.quickstart_recipe import (
        QUICKSTART_COUNTS,
        QUICKSTART_SHAPES,
        quickstart_preprocess_spec,
        run_quickstart_recipe,
    )
    from vitedge.data.shapes import shapes_class_names, write_image_folder
    from vitedge.runtime.manifest import SourceInfo

    run = run_quickstart_recipe()
    names = shapes_class_names(QUICKSTART_SHAPES)
    source = SourceModel(run.model, quickstart_preprocess_spec(), dict(enumerate(names)),
                         SourceInfo(model="quickstart recipe", weights="trained", architecture=architecture_summary(run.model)))
    images = write_image_folder(workdir / "data", "test", QUICKSTART_COUNTS.test, QUICKSTART_SHAPES)
    rows = []
    cases = [(precision, "float") for precision in FORMAT.precision_names] + [("fp16", "image"), ("int8-weight", "image")]
    for precision, input_type in cases:
        folder = workdir / f"accuracy-{precision}-{input_type}"
        folder.mkdir()
        exported = export_coreml(source, folder, ExportOptions(precision=precision, input_type=input_type))
        describe(FORMAT, precision, folder, exported, source).write(folder)
        report = validate_coreml(folder, source, FORMAT.support(precision).tolerance, samples=samples, images_dir=images)
        verdict = "yes" if report.passed else "NO: " + "; ".join(report.failures)
        rows.append(
            f"| {precision} | {input_type} | {report.top1_agreement:.2%} | {report.min_logits_cosine:.5f} | "
            f"{report.mean_logits_cosine:.5f} | {report.min_embedding_cosine:.5f} | {verdict} |"
        )
        print(rows[-1], flush=True)
    about = (f"quickstart recipe ViT ({run.model.config.hidden_size} hidden, {run.model.config.num_hidden_layers} layers, "
             f"{run.model.config.image_size}px), torch fp32 test accuracy {run.test_accuracy:.1%}, "
             f"{min(samples, QUICKSTART_COUNTS.test * len(names))} held-out test images")
    return rows, about


def run(*, samples: int, sizes: bool, accuracy: bool) -> str:
    lines = ["# Core ML precisions: size, conversion time, simulated accuracy", "", measured_on()]
    with tempfile.TemporaryDirectory(prefix="vitedge-coreml-bench-") as tmp:
        if sizes:
            lines += [
                "",
                f"## Size: {SIZE_MODEL}",
                "",
                "Package = the whole .mlpackage; bits/weight = stored bits per weight of the compressed tensors "
                "(scales, zero points and lookup tables included; fp32 = 32); conversion = trace + convert + compress "
                "+ classifier + save, on this machine.",
                "",
                "| precision | min target | package | vs fp32 | compressed tensors | bits/weight | conversion |",
                "|---|---|---|---|---|---|---|",
                *size_rows(SIZE_MODEL, Path(tmp)),
            ]
        if accuracy:
            rows, about = accuracy_rows(Path(tmp), samples)
            lines += [
                "",
                "## Simulated accuracy: trained ViT",
                "",
                f"{about}. Simulated as `vitedge convert` does on Linux (the package's decompressed weights in torch, "
                "fp16 compute; an image input's scale and bias as Core ML applies them), against torch fp32. "
                "Agreement = same top-1 class as torch fp32; cosines between logits (min and mean over images) and "
                "embeddings (min); tolerance = meets the registry's tolerance for that precision.",
                "",
                "| precision | input | top-1 agreement | min logits cosine | mean logits cosine | min embedding cosine | tolerance |",
                "|---|---|---|---|---|---|---|",
                *rows,
            ]
    lines += ["", "Reproduce: `python -m vitedge.benchmarks.studies.coreml_sizes " + " ".join(sys.argv[1:]) + "`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=500, help="held-out images for the accuracy part (default 500)")
    parser.add_argument("--skip-sizes", action="store_true", help="only the accuracy part (no ViT-B conversions)")
    parser.add_argument("--skip-accuracy", action="store_true", help="only the size part (no training)")
    parser.add_argument("--out", type=Path, help="write the Markdown report here (default: print it)")
    args = parser.parse_args(argv)
    emit(run(samples=args.samples, sizes=not args.skip_sizes, accuracy=not args.skip_accuracy), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
