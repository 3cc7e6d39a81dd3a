"""Which ONNX exporter settings give the fastest ViT graph? Measured, with PyTorch eager alongside.

Exports one model (a preset by default: ViT-B/16-224 with random weights; latency does not
depend on the weights) with each exporter (TorchScript-based, dynamo) and attention kernel
(eager, sdpa), then times onnxruntime on each graph and PyTorch eager fp32 in the same process,
round-robin, at batch 1 with a pinned thread count. Writes a Markdown report.

    python -m vitedge.benchmarks.exporter_choice --out benchmarks/results/onnx_exporter.md
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

import numpy as np

from vitedge.benchmarks.results_file import emit, measured_on


def _graph_summary(path: Path) -> str:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    ops = collections.Counter(node.op_type for node in graph.node)
    interesting = ("MatMul", "Softmax", "LayerNormalization", "Where", "IsNaN", "Erf", "Attention",
                   "SkipLayerNormalization", "BiasGelu")
    return f"{sum(ops.values())} nodes (" + ", ".join(f"{op} {ops[op]}" for op in interesting if ops[op]) + ")"


def _ort_runner(path: Path, x: np.ndarray, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda: session.run(None, {name: x})


def run(model: str, *, threads: int, runs: int, warmup: int, batch: int) -> str:
    import torch

    from vitedge.benchmarks.latency import interleaved
    from vitedge.converters.export_types import ExportOptions
    from vitedge.converters.loading import load_source
    from vitedge.converters.onnx_export import export_onnx

    torch.set_num_threads(threads)
    source = load_source(model)
    size = source.image_size
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    candidates, graphs = {}, {}
    workdir = Path(tempfile.mkdtemp(prefix="vitedge-exporters-"))
    variants = [(f"ONNX {e} exporter, {a} attention, plain graph", ExportOptions(exporter=e, attention=a, graph="plain"))
                for e in ("torchscript", "dynamo") for a in ("eager", "sdpa")]
    variants.append(("ONNX vitedge default: torchscript, fused Attention + SkipLayerNorm/BiasGelu", ExportOptions()))
    for index, (name, options) in enumerate(variants):
        folder = workdir / str(index)
        folder.mkdir()
        try:
            export_onnx(source, folder, options)
        except Exception as error:  # a failed variant is a row, not a crash
            graphs[name] = f"export failed: {error}"
            continue
        candidates[name] = _ort_runner(folder / "model.onnx", x, threads)
        graphs[name] = _graph_summary(folder / "model.onnx")
    wrapper = source.two_outputs()
    tensor = torch.from_numpy(x)

    def torch_eager():
        with torch.inference_mode():
            wrapper(tensor)

    candidates["PyTorch eager fp32 (sdpa attention)"] = torch_eager
    graphs["PyTorch eager fp32 (sdpa attention)"] = "-"
    stats = interleaved(candidates, warmup=warmup, runs=runs)
    best_onnx = min(s.p50_ms for name, s in stats.items() if name.startswith("ONNX"))
    eager = stats["PyTorch eager fp32 (sdpa attention)"].p50_ms
    lines = [
        f"# ONNX exporter choice: {model}",
        "",
        measured_on(),
        f"Batch {batch}, {threads} threads, {warmup} warm-up runs, {runs} timed runs each, interleaved round-robin.",
        "",
        "| variant | p50 ms | p90 ms | vs best ONNX | vs PyTorch eager | graph |",
        "|---|---|---|---|---|---|",
    ]
    for name in graphs:
        if name not in stats:
            lines.append(f"| {name} | - | - | - | - | {graphs[name]} |")
            continue
        s = stats[name]
        lines.append(
            f"| {name} | {s.p50_ms:.1f} | {s.p90_ms:.1f} | {s.p50_ms / best_onnx:.2f}x | {s.p50_ms / eager:.2f}x | {graphs[name]} |"
        )
    lines += [
        "",
        "Reproduce: `python -m vitedge.benchmarks.exporter_choice "
        + " ".join(sys.argv[1:]) + "`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="preset:vit-base-patch16-224")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the Markdown report here (default: print it)")
    args = parser.parse_args(argv)
    report = run(args.model, threads=args.threads, runs=args.runs, warmup=args.warmup, batch=args.batch)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
