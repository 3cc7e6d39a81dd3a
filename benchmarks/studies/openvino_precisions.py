"""OpenVINO precisions measured: agreement with torch fp32 per precision (and SmoothQuant on or off), and the route.

For each model (``--model``: Hugging Face folders; default: the quickstart ViT, trained here) it converts to
every OpenVINO precision in the registry plus candidates that were not chosen (int8-static with NNCF's
SmoothQuant the other way), runs held-out images (``--images``: an ImageFolder, e.g. the quickstart's ``data/test``;
default: the built-in shapes test split) through vitedge's OpenVINO backend on the CPU, and compares with
the torch fp32 model: the numbers behind the registry's OpenVINO tolerances and the SmoothQuant choice.
``--routes MODEL`` also times the fp32 graph three ways (torch module with sdpa or eager attention, the
plain ONNX export read by OpenVINO): the choice behind ``vitedge.converters.openvino.export``.

    vitedge quickstart --out /tmp/qs
    python -c "from tests.conftest import write_tiny_folder as w; from pathlib import Path; \\
        [w(Path(f'/tmp/tiny-vit-{seed}'), seed=seed) for seed in range(4)]"     # the tests' tiny ViT, 4 seeds
    python -m vitedge.benchmarks.studies.openvino_precisions --model /tmp/qs/model --images /tmp/qs/data/test \\
        --model /tmp/tiny-vit-0 --model /tmp/tiny-vit-1 --model /tmp/tiny-vit-2 --model /tmp/tiny-vit-3 \\
        --routes preset:vit-base-patch16-224 --out benchmarks/results/openvino.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vitedge.benchmarks.results_file import emit, measured_on

TABLE_HEADER = [
    "| model | candidate | precision | ran in | top-1 agreement | top-1 accuracy | min / mean logits cosine "
    "| min embedding cosine | registry tolerance |",
    "|---|---|---|---|---|---|---|---|---|",
]


@dataclass(frozen=True)
class Candidate:
    """One way to make an OpenVINO artifact: a registry precision, or a recipe variant that was not chosen."""

    name: str
    precision: str
    smooth_quant: bool | None = None  # None: the recipe's choice


def candidates() -> list[Candidate]:
    from vitedge.converters.openvino.quantize import SMOOTH_QUANT
    from vitedge.formats import get_format

    chosen = [Candidate(precision, precision) for precision in get_format("openvino").precision_names]
    other = "on" if not SMOOTH_QUANT else "off"
    return chosen + [Candidate(f"int8-static, SmoothQuant {other}", "int8-static", smooth_quant=not SMOOTH_QUANT)]


def build(source, candidate: Candidate, out: Path, calibration_samples: int) -> Path:
    """``out``: ``candidate``'s artifact (manifest without validation: the study measures it)."""
    from vitedge.converters import ExportOptions
    from vitedge.converters.atomic import atomic_folder
    from vitedge.converters.openvino.export import export_openvino
    from vitedge.converters.stages import describe
    from vitedge.formats import get_format

    options = ExportOptions(precision=candidate.precision, calibration_samples=calibration_samples)
    extra = {} if candidate.smooth_quant is None else {"smooth_quant": candidate.smooth_quant}
    with atomic_folder(out, overwrite=True) as work:
        exported = export_openvino(source, work, options, **extra)
        describe(get_format("openvino"), candidate.precision, work, exported, source).write(work)
    return out


def held_out(source, images: Path | None, samples: int):
    """Preprocessed held-out inputs, their labels (None when unknown) and a description."""
    import numpy as np

    from vitedge.converters.validate import validation_inputs
    from vitedge.data.imagefolder import read_image_folder
    from vitedge.runtime.images import load_rgb
    from vitedge.runtime.preprocess import preprocess_batch

    if images is None:
        inputs, description = validation_inputs(source.preprocess, samples)
        return inputs, None, description
    folder = read_image_folder(images)
    chosen = folder.samples[:: max(1, len(folder.samples) // samples)][:samples]
    index_of = {label: index for index, label in source.labels.items()}
    labels = np.asarray([index_of.get(folder.class_names[label], -1) for _, label in chosen])
    inputs = preprocess_batch([load_rgb(path) for path, _ in chosen], source.preprocess)
    paths = chosen
    return inputs, labels, f"{len(paths)} images from {images}"


def measure_model(model: str, images: Path | None, *, samples: int, calibration_samples: int, threads: int,
                  echo) -> list[str]:
    """Table rows for one model: every candidate against torch fp32 on the same held-out inputs."""
    from vitedge.converters.loading import load_source
    from vitedge.converters.stages import tolerance_for
    from vitedge.converters.validate import artifact_outputs, compare_outputs, torch_outputs
    from vitedge.formats import get_format
    from vitedge.metrics import topk_accuracy
    from vitedge.render import execution_text
    from vitedge.runtime.classifier import Classifier

    source = load_source(model)
    inputs, labels, description = held_out(source, images, samples)
    reference = torch_outputs(source, inputs)
    name = f"{'/'.join(Path(model).parts[-2:])} ({source.info.weights}, {description})"
    echo(f"{name}: torch fp32 ready")
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="vitedge-openvino-study-"))
    fmt = get_format("openvino")
    for candidate in candidates():
        folder = build(source, candidate, workdir / candidate.name.replace(" ", "_").replace(",", ""), calibration_samples)
        classifier = Classifier.open(folder, num_threads=threads, verify=False)
        outputs = artifact_outputs(classifier, inputs)
        tolerance = tolerance_for(fmt.support(candidate.precision), source)
        report = compare_outputs(reference, outputs, tolerance, inputs=description)
        verdict = "meets" if report.passed else "misses: " + "; ".join(report.failures)
        accuracy = "-" if labels is None else f"{topk_accuracy(outputs['logits'], labels):.1%}"
        ran = execution_text(classifier.backend.execution).removeprefix("; ran on ").split(" (")[0]
        rows.append(f"| {name} | {candidate.name} | {candidate.precision} | {ran} | {report.top1_agreement:.1%} "
                    f"| {accuracy} | {report.min_logits_cosine:.5f} / {report.mean_logits_cosine:.5f} "
                    f"| {report.min_embedding_cosine:.5f} | {verdict} |")
        echo(rows[-1])
    if labels is not None:
        rows.append(f"| {name} | torch fp32 | - | - | - | {topk_accuracy(reference['logits'], labels):.1%} | - | - | - |")
    return rows


def measure_routes(model: str, *, threads: int, runs: int, echo) -> list[str]:
    """p50 latency of the fp32 graph made three ways, interleaved call by call (f32, ``threads`` threads)."""
    import numpy as np
    import openvino as ov
    import torch

    from vitedge.converters import ExportOptions, convert
    from vitedge.converters.loading import load_source
    from vitedge.converters.openvino.compat import quiet

    source = load_source(model)
    size = source.image_size
    sample = torch.zeros(2, 3, size, size)
    graphs = {}
    for kernel in ("sdpa", "eager"):
        source.model.set_attn_implementation(kernel)
        with torch.no_grad(), quiet():
            graphs[f"torch module, {kernel} attention"] = ov.convert_model(source.two_outputs(), example_input=sample,
                                                                          input=[-1, 3, size, size])
    onnx = Path(tempfile.mkdtemp(prefix="vitedge-openvino-route-")) / "onnx"
    convert(source, to="onnx", out=onnx, options=ExportOptions(graph="plain"), validation_samples=4)
    graphs["plain ONNX export (torchscript exporter, eager attention)"] = ov.convert_model(str(onnx / "model.onnx"))
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    requests = {name: core.compile_model(graph, "CPU", config).create_infer_request() for name, graph in graphs.items()}
    rows = []
    for batch in (1, 8):
        batch_input = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
        times: dict[str, list[float]] = {name: [] for name in requests}
        for request in requests.values():
            request.infer({0: batch_input})  # warm-up
        for _ in range(runs):
            for name, request in requests.items():
                started = time.perf_counter()
                request.infer({0: batch_input})
                times[name].append(time.perf_counter() - started)
        for name, values in times.items():
            rows.append(f"| {model} | {name} | {batch} | {statistics.median(values) * 1e3:.1f} ms |")
            echo(rows[-1])
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vitedge.benchmarks.studies.openvino_precisions",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", help="a Hugging Face folder (repeatable; default: the quickstart ViT)")
    parser.add_argument("--images", type=Path, help="held-out ImageFolder for the first --model (default: built-in test split)")
    parser.add_argument("--samples", type=int, default=500, help="images taken from --images (default 500)")
    parser.add_argument("--builtin-samples", type=int, default=16,
                        help="built-in test images for the other models (default 16: what the tests validate on)")
    parser.add_argument("--calibration-samples", type=int, default=64, help="int8-static calibration images (default 64)")
    parser.add_argument("--routes", metavar="MODEL", help="also time the three routes to the fp32 graph on this model")
    parser.add_argument("--runs", type=int, default=20, help="timed calls per route and batch size (default 20)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def echo(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    models = args.model or [str(_quickstart_model(echo))]
    lines = ["# OpenVINO: agreement with torch fp32 per precision", "", measured_on(),
             "Every artifact runs through vitedge's OpenVINO backend on the CPU; the reference is the same model in torch "
             "fp32 on the same preprocessed images. \"ran in\" is the precision read back from the compiled model. "
             "Models: a quickstart run's trained ViT on its held-out test images, and the tests' tiny random-init ViT "
             "(`tests/conftest.py` `write_tiny_folder`, seeds 0-3; seed 0 is the one the conformance suite converts) on "
             "the 16 built-in images the tests validate on.", "", *TABLE_HEADER]
    for index, model in enumerate(models):
        images = args.images if index == 0 else None
        lines += measure_model(model, images, samples=args.samples if images else args.builtin_samples,
                               calibration_samples=args.calibration_samples, threads=args.threads, echo=echo)
    if args.routes:
        lines += ["", f"Latency of the fp32 graph (f32, {args.threads} threads, p50 of {args.runs} interleaved calls):", "",
                  "| model | route | batch | p50 |", "|---|---|---|---|"]
        lines += measure_routes(args.routes, threads=args.threads, runs=args.runs, echo=echo)
    command = " ".join(["python -m vitedge.benchmarks.studies.openvino_precisions", *(sys.argv[1:] if argv is None else argv)])
    emit("\n".join([*lines, "", f"Reproduce: `{command}`", ""]), args.out)
    return 0


def _quickstart_model(echo) -> Path:
    """A quickstart run's trained model folder (made with ``vitedge quickstart`` in a temporary folder)."""
    import subprocess

    folder = Path(tempfile.mkdtemp(prefix="vitedge-openvino-quickstart-"))
    echo(f"training the quickstart ViT into {folder} …")
    subprocess.run([sys.executable, "-m", "vitedge.cli", "quickstart", "--out", str(folder)], check=True)
    return folder / "model"


if __name__ == "__main__":
    raise SystemExit(main())
