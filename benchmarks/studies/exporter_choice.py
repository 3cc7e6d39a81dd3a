"""Which ONNX graph is fastest for ViT? Exporters, fusions and int8 graphs, measured with PyTorch eager alongside.

Exports one model (a preset by default: ViT-B/16-224 with random weights; latency does not
depend on the weights) with each exporter (TorchScript-based, dynamo) and attention kernel
(eager, sdpa); with onnxruntime's fused Attention op, with and without onnxruntime's offline
SkipLayerNorm/BiasGelu fusions; and the int8-dynamic graph variants of :mod:`.onnx_int8_variants`
(vitedge's default, the plain graph, QAttention, int8 attention products, the transformer optimizer,
8-bit MatMulNBits, session options) against the peer (``quantize_dynamic``'s defaults on the plain graph).
Times all of them and PyTorch eager fp32 in one process at a pinned thread count, in blocks interleaved
over rounds (:func:`vitedge.benchmarks.latency.in_blocks`: every onnxruntime session owns a spinning thread
pool), times each int8 graph's CPU work at 1 thread (the steadier ratio on a shared machine), and
profiles where each graph spends its time (per op type).

    python -m vitedge.benchmarks.studies.exporter_choice --out benchmarks/results/onnx_exporter.md
    python -m vitedge.benchmarks.studies.exporter_choice --only-int8 --out benchmarks/results/onnx_int8_graphs.md
"""

from __future__ import annotations

import argparse
import collections
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from vitedge.benchmarks.latency import in_blocks, ort_session
from vitedge.benchmarks.results_file import emit, measured_on
from vitedge.benchmarks.studies import onnx_int8_variants as int8_graphs


def _graph_summary(path: Path) -> str:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    ops = collections.Counter(node.op_type for node in graph.node)
    interesting = ("MatMul", "Softmax", "LayerNormalization", "Where", "IsNaN", "Erf", "Attention",
                   "SkipLayerNormalization", "BiasGelu", "MultiHeadAttention", "QAttention", "MatMulInteger",
                   "DynamicQuantizeLinear", "MatMulNBits")
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


FP32_DEFAULT = "ONNX vitedge default: torchscript, fused Attention"
FP32_OPTIMIZER = "ONNX torchscript, fused Attention + ORT SkipLayerNorm/BiasGelu fusions"


EAGER = "PyTorch eager fp32 (sdpa attention)"


def run(model: str, *, threads: int, runs: int, warmup: int, batch: int, rounds: int = 3, int8: bool = True,
        only_int8: bool = False) -> str:
    """Export, time and profile every variant of ``model``; returns the Markdown report."""
    import torch

    from vitedge.converters.loading import load_source

    torch.set_num_threads(threads)
    source = load_source(model)
    size = source.image_size
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    workdir = Path(tempfile.mkdtemp(prefix="vitedge-exporters-"))
    candidates, graphs, folders = _fp32_variants(source, workdir, x, threads, only_defaults=only_int8)
    profiled = {name: folders[name] / "model.onnx" for name in (FP32_DEFAULT, FP32_OPTIMIZER) if name in folders}
    if only_int8:
        candidates, graphs, profiled = {}, {}, {}
    variants: list = []
    if int8 and {"plain", "fused"} <= set(folders):
        variants, failures = int8_graphs.build_variants(source, folders["plain"] / "model.onnx",
                                                        folders["fused"] / "model.onnx", workdir)
        graphs.update({name: f"not built: {error}" for name, error in failures.items()})
        for variant in variants:
            opened = int8_graphs.session(variant, threads)
            candidates[variant.name] = lambda opened=opened: opened.run(None, {"pixel_values": x})
            graphs[variant.name] = _graph_summary(variant.path)
    candidates[EAGER] = _torch_eager(source, x)
    graphs[EAGER] = "-"
    stats = in_blocks(candidates, rounds=rounds, warmup=warmup, runs=max(1, runs // rounds))
    profiles = {name: op_profile(path, x, threads) for name, path in profiled.items()}
    header = [
        f"# ONNX exporter choice: {model}",
        "",
        measured_on(),
        f"Batch {batch}, {threads} threads, {warmup} warm-up and {max(1, runs // rounds)} timed runs per block, "
        f"{rounds} rounds of blocks interleaved across variants.",
        "",
    ]
    fp32_graphs = {name: graph for name, graph in graphs.items() if name not in {v.name for v in variants}
                   and not graph.startswith("not built")}
    body = [] if only_int8 else _timing_table(stats, fp32_graphs) + _profile_table(profiles)
    if variants:
        body += int8_section(variants, stats, graphs, x, threads)
    footer = ["", "Reproduce: `python -m vitedge.benchmarks.studies.exporter_choice " + " ".join(sys.argv[1:]) + "`", ""]
    shutil.rmtree(workdir, ignore_errors=True)  # a ViT-B run leaves ~2 GB of graphs
    return "\n".join(header + body + footer)


def int8_section(variants: list, stats: dict, graphs: dict[str, str], x: np.ndarray, threads: int) -> list[str]:
    """The int8-dynamic graphs against the peer: latency, CPU work, load time, nodes, and each one's profile."""
    cpu = int8_graphs.cpu_ms(variants, x)
    profiles = {v.name: int8_graphs.profile(v, x, threads) for v in variants}
    peer = int8_graphs.PEER
    lines = ["", "## int8-dynamic graphs against the peer", "",
             f"p50 at {threads} threads (wall clock, blocks interleaved with every variant above), CPU ms per call at 1 "
             "thread without spinning (the work the graph does: the steadier ratio while other jobs share the machine), "
             "session load time, and nodes run per call after onnxruntime's graph optimizations.", "",
             "| variant | p50 ms | vs peer | CPU ms (1 thread) | vs peer | load ms | nodes run | graph |",
             "|---|---|---|---|---|---|---|---|"]
    for variant in variants:
        name, s = variant.name, stats[variant.name]
        lines.append(f"| {name} | {s.p50_ms:.1f} | {s.p50_ms / stats[peer].p50_ms:.2f}x | {cpu[name]:.1f} | "
                     f"{cpu[name] / cpu[peer]:.2f}x | {int8_graphs.load_ms(variant, threads):.0f} | "
                     f"{profiles[name].nodes} | {graphs[name]} |")
    lines += [f"| {name} | - | - | - | - | - | - | {graph} |" for name, graph in graphs.items()
              if graph.startswith("not built")]
    categories = [c for c in [*int8_graphs.CATEGORIES, "other"] if any(p.shares().get(c) for p in profiles.values())]
    lines += ["", "Where each int8 graph spends its time (onnxruntime's profiler at the same threads, % of the kernels' "
              "time per call):", "", "| variant | kernels ms | " + " | ".join(categories) + " |",
              "|---|---|" + "---|" * len(categories)]
    for name, found in profiles.items():
        shares = found.shares()
        lines.append(f"| {name} | {found.total_ms:.1f} | " + " | ".join(f"{shares.get(c, 0):.1f}%" for c in categories) + " |")
    return lines


def _fp32_variants(source, workdir: Path, x: np.ndarray, threads: int, *, only_defaults: bool = False
                   ) -> tuple[dict, dict[str, str], dict[str, Path]]:
    """Export every fp32 variant: (runners, graph summaries or export errors, folders by name and alias).

    The folders also go by the aliases ``plain`` (the first plain graph) and ``fused`` (vitedge's default),
    which the int8 variants start from; ``only_defaults`` exports those two only.
    """
    from vitedge.converters.export_types import ExportOptions
    from vitedge.converters.onnx.export import export_onnx
    from vitedge.converters.onnx.optimize import transformer_fusions

    variants = [(f"ONNX {e} exporter, {a} attention, plain graph", ExportOptions(exporter=e, attention=a, graph="plain"))
                for e in ("torchscript", "dynamo") for a in ("eager", "sdpa")]
    variants += [(FP32_DEFAULT, ExportOptions()), (FP32_OPTIMIZER, ExportOptions())]
    if only_defaults:
        variants = [variants[0], variants[-2]]
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
    parser.add_argument("--rounds", type=int, default=3, help="rounds of blocks (--runs are split over them)")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8-dynamic graph variants")
    parser.add_argument("--only-int8", action="store_true", help="only the int8-dynamic graphs against the peer")
    parser.add_argument("--out", type=Path, help="write the Markdown report here (default: print it)")
    args = parser.parse_args(argv)
    report = run(args.model, threads=args.threads, runs=args.runs, warmup=args.warmup, batch=args.batch,
                 rounds=args.rounds, int8=not args.no_int8, only_int8=args.only_int8)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
