"""Which ONNX graph is fastest for ViT? Exporters, fusions and int8 graphs, measured with PyTorch eager alongside.

Exports one model (a preset by default: ViT-B/16-224 with random weights; latency does not
depend on the weights) with each exporter (TorchScript-based, dynamo) and attention kernel
(eager, sdpa); with onnxruntime's fused Attention op, with and without onnxruntime's offline
SkipLayerNorm/BiasGelu fusions; and, for int8-dynamic, quantizes the plain graph (vitedge's
choice), the fused-attention graph (QAttention), and the plain graph with ``quantize_dynamic``'s
defaults (the peer). Times all of them and PyTorch eager fp32 in one process, round-robin, with a
pinned thread count, and profiles where each default graph spends its time (per op type).

    python -m vitedge.benchmarks.studies.exporter_choice --out benchmarks/results/onnx_exporter.md
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

import numpy as np

from vitedge.benchmarks.latency import interleaved, ort_session
from vitedge.benchmarks.results_file import emit, measured_on


def _graph_summary(path: Path) -> str:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    ops = collections.Counter(node.op_type for node in graph.node)
    interesting = ("MatMul", "Softmax", "LayerNormalization", "Where", "IsNaN", "Erf", "Attention",
                   "SkipLayerNormalization", "BiasGelu")
    return f"{sum(ops.values())} nodes (" + ", ".join(f"{op} {ops[op]}" for op in interesting if ops[op]) + ")"


def _ort_runner(path: Path, x: np.ndarray, threads: int):
    session = ort_session(path, threads)
    name = session.get_inputs()[0].name
    return lambda: session.run(None, {name: x})


def op_profile(path: Path, x: np.ndarray, threads: int, runs: int = 5) -> dict[str, float]:
    """Milliseconds per call spent in each op type (onnxruntime's profiler), most expensive first."""
    import json

    session = ort_session(path, threads, profile_prefix=str(path.with_suffix("")))
    name = session.get_inputs()[0].name
    for _ in range(runs + 1):
        session.run(None, {name: x})
    events = json.loads(Path(session.end_profiling()).read_text())
    totals: collections.Counter = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"] / 1000 / (runs + 1)
    return dict(totals.most_common())


def _int8_variants(folders: dict[str, Path], workdir: Path) -> dict[str, Path]:
    """int8-dynamic graphs: vitedge's recipe on the plain graph, the same on the fused graph (QAttention), the peer."""
    import contextlib
    import io
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from vitedge.converters.onnx.quantize import quantize

    plain, fused = folders["plain"] / "model.onnx", folders["fused"] / "model.onnx"
    out = {name: workdir / f"int8-{index}.onnx" for index, name in enumerate(INT8_VARIANTS)}
    logging.getLogger().setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        quantize(plain, out[INT8_VARIANTS[0]], "int8-dynamic")
        quantize_dynamic(str(fused), str(out[INT8_VARIANTS[1]]), op_types_to_quantize=["MatMul", "Attention"],
                         per_channel=True, weight_type=QuantType.QInt8, extra_options={"DefaultTensorType": 1})
        quantize_dynamic(str(plain), str(out[INT8_VARIANTS[2]]))
    return out


INT8_VARIANTS = (
    "int8-dynamic, vitedge default: per-channel MatMuls of the plain graph",
    "int8-dynamic, per-channel MatMuls + fused Attention (QAttention)",
    "int8-dynamic, peer: ORT quantize_dynamic defaults on the plain graph",
)
FP32_DEFAULT = "ONNX vitedge default: torchscript, fused Attention"
FP32_OPTIMIZER = "ONNX torchscript, fused Attention + ORT SkipLayerNorm/BiasGelu fusions"


EAGER = "PyTorch eager fp32 (sdpa attention)"


def run(model: str, *, threads: int, runs: int, warmup: int, batch: int, int8: bool = True) -> str:
    """Export, time and profile every variant of ``model``; returns the Markdown report."""
    import torch

    from vitedge.converters.loading import load_source

    torch.set_num_threads(threads)
    source = load_source(model)
    size = source.image_size
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    workdir = Path(tempfile.mkdtemp(prefix="vitedge-exporters-"))
    candidates, graphs, folders = _fp32_variants(source, workdir, x, threads)
    profiled = {name: folders[name] / "model.onnx" for name in (FP32_DEFAULT, FP32_OPTIMIZER) if name in folders}
    if int8 and {"plain", "fused"} <= set(folders):
        for name, path in _int8_variants(folders, workdir).items():
            candidates[name] = _ort_runner(path, x, threads)
            graphs[name] = _graph_summary(path)
        profiled[INT8_VARIANTS[0]] = workdir / "int8-0.onnx"
        profiled[INT8_VARIANTS[1]] = workdir / "int8-1.onnx"
    candidates[EAGER] = _torch_eager(source, x)
    graphs[EAGER] = "-"
    stats = interleaved(candidates, warmup=warmup, runs=runs)
    profiles = {name: op_profile(path, x, threads) for name, path in profiled.items()}
    header = [
        f"# ONNX exporter choice: {model}",
        "",
        measured_on(),
        f"Batch {batch}, {threads} threads, {warmup} warm-up runs, {runs} timed runs each, interleaved round-robin.",
        "",
    ]
    footer = ["", "Reproduce: `python -m vitedge.benchmarks.studies.exporter_choice " + " ".join(sys.argv[1:]) + "`", ""]
    return "\n".join(header + _timing_table(stats, graphs) + _profile_table(profiles) + footer)


def _fp32_variants(source, workdir: Path, x: np.ndarray, threads: int) -> tuple[dict, dict[str, str], dict[str, Path]]:
    """Export every fp32 variant: (runners, graph summaries or export errors, folders by name and alias).

    The folders also go by the aliases ``plain`` (the first plain graph) and ``fused`` (vitedge's default),
    which the int8 variants start from.
    """
    from vitedge.converters.export_types import ExportOptions
    from vitedge.converters.onnx.export import export_onnx
    from vitedge.converters.onnx.optimize import transformer_fusions

    variants = [(f"ONNX {e} exporter, {a} attention, plain graph", ExportOptions(exporter=e, attention=a, graph="plain"))
                for e in ("torchscript", "dynamo") for a in ("eager", "sdpa")]
    variants += [(FP32_DEFAULT, ExportOptions()), (FP32_OPTIMIZER, ExportOptions())]
    candidates, graphs, folders = {}, {}, {}
    for index, (name, options) in enumerate(variants):
        folder = workdir / str(index)
        folder.mkdir()
        try:
            export_onnx(source, folder, options)
            if name == FP32_OPTIMIZER:
                transformer_fusions(folder / "model.onnx")
        except Exception as error:  # a failed variant is a row, not a crash
            graphs[name] = f"export failed: {error}"
            continue
        candidates[name] = _ort_runner(folder / "model.onnx", x, threads)
        graphs[name] = _graph_summary(folder / "model.onnx")
        folders[name] = folder
    folders.update({alias: folders[name] for alias, name in (("plain", variants[0][0]), ("fused", FP32_DEFAULT))
                    if name in folders})
    return candidates, graphs, folders


def _torch_eager(source, x: np.ndarray):
    import torch

    wrapper = source.two_outputs()
    tensor = torch.from_numpy(x)

    def torch_eager():
        with torch.inference_mode():
            wrapper(tensor)

    return torch_eager


def _timing_table(stats: dict, graphs: dict[str, str]) -> list[str]:
    """One row per variant (in export order), timed against the best fp32 ONNX graph and PyTorch eager."""
    best_onnx = min(s.p50_ms for name, s in stats.items() if name.startswith("ONNX"))
    eager = stats[EAGER].p50_ms
    lines = [
        "| variant | p50 ms | p90 ms | vs best fp32 ONNX | vs PyTorch eager | graph |",
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
    return lines


def _profile_table(profiles: dict[str, dict[str, float]]) -> list[str]:
    """The six most expensive op types of each profiled graph."""
    lines = ["", "Where the time goes (onnxruntime's profiler, ms per call by op type, same threads):", "",
             "| graph | " + " | ".join(f"op {i + 1}" for i in range(6)) + " |", "|---|" + "---|" * 6]
    for name, ops in profiles.items():
        top = [f"{op} {ms:.1f}" for op, ms in list(ops.items())[:6]]
        lines.append(f"| {name} (total {sum(ops.values()):.1f}) | " + " | ".join(top + ["-"] * (6 - len(top))) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="preset:vit-base-patch16-224")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--no-int8", action="store_true", help="skip the int8-dynamic graph variants")
    parser.add_argument("--out", type=Path, help="write the Markdown report here (default: print it)")
    args = parser.parse_args(argv)
    report = run(args.model, threads=args.threads, runs=args.runs, warmup=args.warmup, batch=args.batch,
                 int8=not args.no_int8)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
