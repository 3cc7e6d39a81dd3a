"""int8-dynamic ONNX graph variants of one model, and where each spends its time (onnxruntime's per-op profiler).

The variants the exporter-choice study (:mod:`.exporter_choice`) measures against each other and against
the peer (onnxruntime's ``quantize_dynamic`` with its defaults on the plain graph):

- vitedge's default: int8 per-channel q/k/v/output/MLP MatMuls, softmax(QKᵀ)V as one fused float
  ``MultiHeadAttention`` per layer (:mod:`vitedge.converters.onnx.attention`);
- the plain graph with the same recipe (the default before the fused ``MultiHeadAttention``);
- the fused ``Attention`` graph quantized to ``QAttention`` (int8 QKV GEMM inside the attention op);
- the plain graph with attention's two activation×activation MatMuls in int8 too (``MatMulConstBOnly`` off);
- the plain graph after onnxruntime's transformer optimizer (``model_type="vit"``: SkipLayerNormalization,
  BiasGelu; it does not recognise ViT attention), then the recipe;
- 8-bit ``MatMulNBits`` weights (blocks of 128, int8 compute: ``accuracy_level`` 4);
- the default graph with q, k and v packed into one int8 GEMM and a Split (:mod:`.onnx_packed_qkv`);
- session options on the default graph: intra-op spinning off, and an offline-optimized saved graph
  (``ORT_ENABLE_EXTENDED``, loaded with graph optimizations off).

Torch side (exports): a benchmark study, not the runtime.
"""

from __future__ import annotations

import collections
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vitedge.benchmarks.studies.onnx_packed_qkv import pack_qkv
from vitedge.benchmarks.studies.quiet import quiet

DEFAULT = "vitedge default: int8 q/k/v/out/MLP MatMuls + fused float MultiHeadAttention"
PEER = "peer: ORT quantize_dynamic defaults on the plain graph"
#: Op type → what it is, for the profile summary.
CATEGORIES = {
    "int8 GEMMs": ("DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger", "MatMulNBits", "QGemm",
                   "ConvInteger"),
    "QAttention (int8 QKV GEMM + attention)": ("QAttention",),
    "float attention": ("MultiHeadAttention", "Attention", "FusedMatMul", "MatMul", "Softmax"),
    "Transpose/Reshape": ("Transpose", "Reshape"),
    "GELU": ("Gelu", "BiasGelu", "FastGelu", "Erf"),
    "LayerNorm": ("LayerNormalization", "SkipLayerNormalization"),
    "quantize": ("DynamicQuantizeLinear",),
    "patch Conv (float)": ("Conv",),
}


@dataclass
class Variant:
    """One int8-dynamic graph (or session setting) to time and profile."""

    name: str
    path: Path
    session_options: dict[str, str] = field(default_factory=dict)
    optimizations_off: bool = False




def build_variants(source, plain_fp32: Path, fused_fp32: Path, workdir: Path) -> tuple[list[Variant], dict[str, str]]:
    """Every variant of ``source`` (plain and fused fp32 graphs already exported): variants, and failures by name."""
    builders: dict[str, Callable[[Path], None]] = {
        DEFAULT: lambda out: _export(source, out, graph="optimized"),
        "plain graph, same recipe (the previous default)": lambda out: _export(source, out, graph="plain"),
        "fused Attention quantized to QAttention": lambda out: _dynamic(fused_fp32, out, ["MatMul", "Attention"]),
        "plain graph + attention's activation×activation MatMuls in int8": lambda out: _dynamic(
            plain_fp32, out, ["MatMul"], MatMulConstBOnly=False),
        "plain graph + ORT transformer optimizer (SkipLayerNorm, BiasGelu)": lambda out: _optimized_then_int8(
            plain_fp32, out),
        "8-bit MatMulNBits weights (block 128, int8 compute)": lambda out: _nbits(plain_fp32, out, bits=8, block=128),
        PEER: lambda out: _peer(plain_fp32, out),
    }
    variants, failures = [], {}
    for index, (name, build) in enumerate(builders.items()):
        out = workdir / f"int8-{index}.onnx"
        try:
            with quiet():
                build(out)
        except Exception as error:  # a variant that cannot be built is a row, not a crash
            failures[name] = f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"
            continue
        variants.append(Variant(name, out))
    default = next((v for v in variants if v.name == DEFAULT), None)
    if default is not None:
        variants.append(Variant(f"{DEFAULT}, intra-op spinning off", default.path,
                                {"session.intra_op.allow_spinning": "0"}))
        packed = workdir / "int8-packed-qkv.onnx"
        if pack_qkv(default.path, packed):
            variants.append(Variant(f"{DEFAULT}, q/k/v packed into one int8 GEMM + Split", packed))
        offline = workdir / "int8-offline.onnx"
        save_optimized(default.path, offline)
        variants.append(Variant(f"{DEFAULT}, offline-optimized graph (EXTENDED, saved)", offline, optimizations_off=True))
    return variants, failures


def _export(source, out: Path, *, graph: str) -> None:
    from vitedge.converters.export_types import ExportOptions
    from vitedge.converters.onnx.export import export_onnx

    folder = out.with_suffix("")
    folder.mkdir()
    export_onnx(source, folder, ExportOptions(precision="int8-dynamic", graph=graph))
    shutil.move(folder / "model.onnx", out)


def _dynamic(fp32: Path, out: Path, op_types: list[str], **extra) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(out), op_types_to_quantize=op_types, per_channel=True, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": 1, **extra})


def _optimized_then_int8(plain_fp32: Path, out: Path) -> None:
    from vitedge.converters.onnx.optimize import transformer_fusions

    copy = out.with_name(out.stem + "-fp32.onnx")
    shutil.copy(plain_fp32, copy)
    transformer_fusions(copy)
    _dynamic(copy, out, ["MatMul"])


def _nbits(plain_fp32: Path, out: Path, *, bits: int, block: int) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(onnx.load(str(plain_fp32)), bits=bits, block_size=block, is_symmetric=True,
                                     accuracy_level=4)
    quantizer.process()
    onnx.save_model(quantizer.model.model, str(out))


def _peer(plain_fp32: Path, out: Path) -> None:
    from onnxruntime.quantization import quantize_dynamic

    quantize_dynamic(str(plain_fp32), str(out))


def save_optimized(path: Path, out: Path) -> None:
    """onnxruntime's ``ORT_ENABLE_EXTENDED`` graph of ``path`` (fused contrib ops, no CPU-specific layouts), saved."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(out)
    options.log_severity_level = 3
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def session(variant: Variant, threads: int, *, profile_prefix: str | None = None, spinning: bool = True):
    """An onnxruntime CPU session for ``variant`` as the runtime opens artifacts (plus the variant's own options)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if variant.optimizations_off:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    for key, value in {**variant.session_options, **({} if spinning else {"session.intra_op.allow_spinning": "0"})}.items():
        options.add_session_config_entry(key, value)
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(variant.path), options, providers=["CPUExecutionProvider"])


def load_ms(variant: Variant, threads: int, repeats: int = 3) -> float:
    """Median milliseconds to open a session (what a fresh process pays before its first call)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session(variant, threads)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


@dataclass(frozen=True)
class Profile:
    """Where one call's time goes: milliseconds per op type, and how many nodes ran."""

    ms_by_op: dict[str, float]
    nodes: int

    @property
    def total_ms(self) -> float:
        return sum(self.ms_by_op.values())

    def shares(self) -> dict[str, float]:
        """Percent of the kernels' time per category of :data:`CATEGORIES` (and ``other``)."""
        category_of = {op: name for name, ops in CATEGORIES.items() for op in ops}
        shares: collections.Counter = collections.Counter()
        for op, ms in self.ms_by_op.items():
            shares[category_of.get(op, "other")] += 100 * ms / self.total_ms
        return dict(shares)


def profile(variant: Variant, x: np.ndarray, threads: int, runs: int = 5) -> Profile:
    """onnxruntime's per-op profile of ``runs`` calls (after one warm-up), per call."""
    prefix = str(variant.path.with_name(variant.path.stem + "-profile"))
    profiled = session(variant, threads, profile_prefix=prefix)
    name = profiled.get_inputs()[0].name
    profiled.run(None, {name: x})
    for _ in range(runs):
        profiled.run(None, {name: x})
    events = json.loads(Path(profiled.end_profiling()).read_text())
    totals: collections.Counter = collections.Counter()
    count = 0
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"] / 1000 / (runs + 1)
            count += 1
    return Profile(dict(totals.most_common()), round(count / (runs + 1)))


def cpu_ms(variants: list[Variant], x: np.ndarray, *, rounds: int = 3, runs: int = 5) -> dict[str, float]:
    """Median CPU milliseconds per call at 1 thread without spinning: the work a graph does, whatever else runs.

    On a shared machine wall-clock latency depends on the neighbours; the CPU time of a single-threaded call
    barely does, so its ratios between graphs are the steadier (they leave out multi-thread scaling).
    """
    sessions = {v.name: session(v, 1, spinning=False) for v in variants}
    seconds: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, opened in sessions.items():
            input_name = opened.get_inputs()[0].name
            opened.run(None, {input_name: x})
            for _ in range(runs):
                start = time.process_time()
                opened.run(None, {input_name: x})
                seconds[name].append(time.process_time() - start)
    return {name: float(np.median(values) * 1000) for name, values in seconds.items()}
