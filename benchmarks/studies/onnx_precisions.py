"""ONNX precisions against the peers: size, latency and top-1 agreement, in one run.

For a model (a preset by default: ViT-B/16-224 with random weights, for size and latency), every
ONNX precision vitedge produces, plus the peers a user would otherwise get: PyTorch eager fp32,
and onnxruntime's own ``quantize_dynamic`` defaults on a plain export. Latency is timed round-robin
(interleaved) at each batch size with a pinned thread count; ratios against ORT fp32 and PyTorch
eager are what to quote. With ``--trained`` the quickstart recipe trains a small model first (about
two minutes) so top-1 agreement (on held-out images) means something.

    python -m vitedge.benchmarks.studies.onnx_precisions --out benchmarks/results/onnx_precisions.md
    python -m vitedge.benchmarks.studies.onnx_precisions --trained --out benchmarks/results/onnx_precisions_trained.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from vitedge.benchmarks.latency import interleaved, ort_session
from vitedge.benchmarks.results_file import emit, measured_on


def _session_runner(path: Path, threads: int):
    session = ort_session(path, threads)
    name = session.get_inputs()[0].name
    return lambda batch: session.run(["logits"], {name: batch})[0]


def _plain_export_and_quantize_dynamic(source, workdir: Path) -> tuple[Path, Path]:
    """The plain fp32 graph, and what a user gets without vitedge: quantize_dynamic's defaults on it."""
    import contextlib
    import io
    import logging

    from onnxruntime.quantization import quantize_dynamic

    from vitedge.converters.export_types import ExportOptions
    from vitedge.converters.onnx.export import export_onnx

    folder = workdir / "peer-plain"
    folder.mkdir()
    export_onnx(source, folder, ExportOptions(graph="plain"))
    logging.getLogger().setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        quantize_dynamic(str(folder / "model.onnx"), str(folder / "qd.onnx"))
    return folder / "model.onnx", folder / "qd.onnx"


def run(model: str, *, trained: bool, threads: int, runs: int, warmup: int, batch_sizes: list[int], samples: int) -> str:
    import torch

    from vitedge.converters import convert, load_source
    from vitedge.converters.validate import torch_outputs, validation_inputs
    from vitedge.formats import FORMATS
    from vitedge.metrics import row_cosines, top1_agreement

    torch.set_num_threads(threads)
    workdir = Path(tempfile.mkdtemp(prefix="vitedge-onnx-precisions-"))
    if trained:
        from vitedge.converters.training.output import save_hf_folder
        from vitedge.converters.training.quickstart_recipe import (
            quickstart_preprocess_spec,
            run_quickstart_recipe,
        )

        recipe = run_quickstart_recipe()
        save_hf_folder(recipe.model, workdir / "trained", quickstart_preprocess_spec(), {"weights": "trained"})
        model = str(workdir / "trained")
    source = load_source(model)
    inputs, description = validation_inputs(source.preprocess, samples)
    reference = torch_outputs(source, inputs)["logits"]
    paths: dict[str, Path] = {}
    for precision in FORMATS["onnx"].precision_names:
        result = convert(source, to="onnx", precision=precision, out=workdir / precision, validation_samples=8)
        paths[f"vitedge onnx {precision}"] = result.path / "model.onnx"
    plain, peer = _plain_export_and_quantize_dynamic(source, workdir)
    paths["vitedge onnx fp32, --graph plain"] = plain
    paths["peer: ORT quantize_dynamic defaults (plain export)"] = peer
    runners = {name: _session_runner(path, threads) for name, path in paths.items()}
    wrapper = source.two_outputs()

    def eager(batch):
        with torch.inference_mode():
            return wrapper(torch.from_numpy(batch))[0].numpy()

    runners["peer: PyTorch eager fp32"] = eager
    quality = {}
    for name, runner in runners.items():
        logits = np.concatenate([runner(inputs[i : i + 8]) for i in range(0, len(inputs), 8)])
        quality[name] = (top1_agreement(reference, logits), float(row_cosines(reference, logits).min()))
    size = {name: path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob("*.data")) for name, path in paths.items()}
    latency = {}
    for batch_size in batch_sizes:
        batch = np.ascontiguousarray(np.resize(inputs, (batch_size, *inputs.shape[1:])))
        calls = {name: (lambda runner=runner, batch=batch: runner(batch)) for name, runner in runners.items()}
        latency[batch_size] = interleaved(calls, warmup=warmup, runs=runs)
    return _markdown(model, description, trained, threads, runs, warmup, batch_sizes, size, quality, latency)


def _markdown(model, description, trained, threads, runs, warmup, batch_sizes, size, quality, latency) -> str:
    fp32 = "vitedge onnx fp32"
    eager = "peer: PyTorch eager fp32"
    header = ["variant", "size MB", "size vs fp32"]
    for b in batch_sizes:
        header += [f"b{b} p50 ms", f"b{b} p90 ms", f"b{b} vs ORT fp32", f"b{b} vs eager"]
    header += ["top-1 agreement", "min logits cosine"]
    lines = [
        f"# ONNX precisions: {model}" + (" (trained on the built-in shapes dataset)" if trained else " (random weights)"),
        "",
        measured_on(),
        f"{threads} threads, {warmup} warm-up and {runs} timed runs per batch size, interleaved round-robin. "
        f"Agreement and cosine against torch fp32 on {description}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name in quality:
        row = [name, f"{size[name] / 1e6:.1f}" if name in size else "-",
               f"{size[name] / size[fp32]:.0%}" if name in size else "-"]
        for b in batch_sizes:
            stats = latency[b][name]
            row += [f"{stats.p50_ms:.1f}", f"{stats.p90_ms:.1f}",
                    f"{stats.p50_ms / latency[b][fp32].p50_ms:.2f}x", f"{stats.p50_ms / latency[b][eager].p50_ms:.2f}x"]
        agreement, cosine = quality[name]
        row += [f"{agreement:.1%}", f"{cosine:.4f}"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Reproduce: `python -m vitedge.benchmarks.studies.onnx_precisions " + " ".join(sys.argv[1:]) + "`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="preset:vit-base-patch16-224")
    parser.add_argument("--trained", action="store_true", help="train the quickstart model and measure it instead")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--samples", type=int, default=200, help="held-out images for agreement")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    report = run(args.model, trained=args.trained, threads=args.threads, runs=args.runs, warmup=args.warmup,
                 batch_sizes=[int(b) for b in args.batch_sizes.split(",")], samples=args.samples)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
