"""One-GEMM models for each backend and precision, built the way vitedge builds that format's artifacts.

Each builder returns a :class:`Kernel`: a callable that runs ``copies`` independent GEMMs of one shape
(M×K by K×N, each with its own input and its own weights) in one call, so the backend's per-call
overhead is spread over several GEMMs, as it is over a model's layers. Inputs differ per copy so that
each GEMM quantizes its own activations, like every Linear of a dynamically quantized model.

- onnxruntime: a graph of ``MatMul`` nodes (fp32); the same graph through vitedge's int8-dynamic recipe
  (:func:`vitedge.converters.onnx.quantize.quantize`: per-channel int8 weights, activations quantized at
  run time), which onnxruntime's graph optimizer fuses into ``DynamicQuantizeMatMul``; and
  ``MatMulInteger`` on already quantized uint8 activations (the int8 GEMM kernel alone).
- TFLite/XNNPACK: ``nn.Linear`` layers through litert-torch (fp32), then ai-edge-quantizer's dynamic int8
  recipe (vitedge's TFLite int8-dynamic: XNNPACK's dynamically quantized fully-connected kernel).
- OpenVINO: an IR of ``MatMul`` ops compiled at f32 and bf16 inference precision, and the same IR through
  ``nncf.quantize`` (int8 activations and weights: OpenVINO's int8 GEMM).

Torch side (litert-torch, ai-edge-quantizer, nncf): a benchmark study, not the runtime.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitedge.benchmarks.studies.quiet import quiet

#: Float weight bytes one kernel model may hold; ``copies`` shrinks for large shapes to stay under it.
WEIGHT_BUDGET_BYTES = 64 * 2**20
MAX_COPIES = 8


@dataclass(frozen=True)
class Kernel:
    """A built one-GEMM model: ``run()`` computes ``copies`` GEMMs of one shape."""

    backend: str
    precision: str
    op: str
    copies: int
    run: Callable[[], object]


def copies_for(k: int, n: int) -> int:
    """How many independent GEMMs one kernel model holds: up to MAX_COPIES, float weights within the budget."""
    return max(1, min(MAX_COPIES, WEIGHT_BUDGET_BYTES // (k * n * 4)))


def _inputs(m: int, k: int, copies: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((m, k)).astype(np.float32) for _ in range(copies)]


def _weights(k: int, n: int, copies: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32) for _ in range(copies)]




# -- onnxruntime ----------------------------------------------------------------------------------


def _onnx_matmuls(path: Path, m: int, k: int, n: int, copies: int, *, integer: bool = False) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    in_type, out_type = (TensorProto.UINT8, TensorProto.INT32) if integer else (TensorProto.FLOAT, TensorProto.FLOAT)
    inputs, outputs, nodes, initializers = [], [], [], []
    for index, weight in enumerate(_weights(k, n, copies)):
        if integer:
            weight = np.clip(np.round(weight * 127 / np.abs(weight).max()), -127, 127).astype(np.int8)
        initializers.append(numpy_helper.from_array(weight, f"w{index}"))
        inputs.append(helper.make_tensor_value_info(f"x{index}", in_type, [m, k]))
        outputs.append(helper.make_tensor_value_info(f"y{index}", out_type, [m, n]))
        nodes.append(helper.make_node("MatMulInteger" if integer else "MatMul", [f"x{index}", f"w{index}"], [f"y{index}"]))
    graph = helper.make_graph(nodes, "gemms", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path))


def _ort_kernel(path: Path, feeds: dict[str, np.ndarray], threads: int, precision: str, copies: int) -> Kernel:
    from vitedge.benchmarks.latency import ort_session

    session = ort_session(path, threads)
    optimized = _optimized_ops(path)
    return Kernel("onnxruntime", precision, optimized, copies, lambda: session.run(None, feeds))


def _optimized_ops(path: Path) -> str:
    """The op types onnxruntime runs after its graph optimizations (what the kernel really is)."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(path.with_suffix(".optimized.onnx"))
    options.log_severity_level = 3
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ops = sorted({node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node})
    return ", ".join(ops)


def onnx_kernels(m: int, k: int, n: int, threads: int, workdir: Path) -> list[Kernel]:
    """onnxruntime fp32 MatMul, vitedge's int8-dynamic recipe, and the u8s8 MatMulInteger kernel alone."""
    from vitedge.converters.onnx.quantize import quantize

    copies = copies_for(k, n)
    xs = _inputs(m, k, copies)
    feeds = {f"x{i}": x for i, x in enumerate(xs)}
    fp32, int8, integer = workdir / "fp32.onnx", workdir / "int8.onnx", workdir / "integer.onnx"
    _onnx_matmuls(fp32, m, k, n, copies)
    with quiet(stderr=True):
        quantize(fp32, int8, "int8-dynamic")
    _onnx_matmuls(integer, m, k, n, copies, integer=True)
    quantized_feeds = {name: np.clip(np.round(x * 32 + 128), 0, 255).astype(np.uint8) for name, x in feeds.items()}
    return [
        _ort_kernel(fp32, feeds, threads, "fp32", copies),
        _ort_kernel(int8, feeds, threads, "int8 (dynamic, vitedge recipe)", copies),
        _ort_kernel(integer, quantized_feeds, threads, "int8 (GEMM only, u8 activations given)", copies),
    ]


# -- TFLite / XNNPACK -----------------------------------------------------------------------------


def _linear_module(k: int, n: int, copies: int):
    import torch
    from torch import nn

    class Linears(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(k, n, bias=False) for _ in range(copies))
            with torch.no_grad():
                for layer, weight in zip(self.layers, _weights(k, n, copies), strict=True):
                    layer.weight.copy_(torch.from_numpy(weight.T.copy()))

        def forward(self, *xs):
            return tuple(layer(x) for layer, x in zip(self.layers, xs, strict=True))

    return Linears().eval()


def _tflite_runner(model: bytes, xs: list[np.ndarray], threads: int) -> Callable[[], object]:
    from vitedge.runtime.backends.tflite import find_runtime

    interpreter = find_runtime().interpreter_class(model_content=model, num_threads=threads)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    by_shape_order = sorted(details, key=lambda detail: detail["index"])
    for detail, x in zip(by_shape_order, xs, strict=True):
        interpreter.set_tensor(detail["index"], x[None])
    return interpreter.invoke


def tflite_kernels(m: int, k: int, n: int, threads: int) -> list[Kernel]:
    """XNNPACK fp32 fully-connected, and the dynamic int8 one (ai-edge-quantizer, vitedge's int8-dynamic)."""
    import litert_torch
    import torch

    from vitedge.converters.tflite.quantize import aeq_quantize, get_recipe

    copies = copies_for(k, n)
    xs = _inputs(m, k, copies)
    previous = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "0"
    try:
        with quiet(stderr=True), torch.no_grad():
            float_model = litert_torch.convert(_linear_module(k, n, copies), tuple(torch.from_numpy(x[None]) for x in xs))
            float_bytes = float_model.model_content()
            int8_bytes = aeq_quantize(float_bytes, get_recipe("aeq-dynamic-wi8"), None, "args_0")
    finally:
        if previous is None:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)
        else:
            os.environ["LITERT_TORCH_SHOW_PROGRESS"] = previous
    return [
        Kernel("TFLite/XNNPACK", "fp32", "FULLY_CONNECTED (litert-torch)", copies, _tflite_runner(float_bytes, xs, threads)),
        Kernel("TFLite/XNNPACK", "int8 (dynamic, vitedge recipe)", "FULLY_CONNECTED (ai-edge-quantizer dynamic_wi8_afp32)",
               copies, _tflite_runner(int8_bytes, xs, threads)),
    ]


# -- OpenVINO -------------------------------------------------------------------------------------


def _openvino_model(m: int, k: int, n: int, copies: int):
    import openvino as ov
    from openvino import opset13 as ops

    parameters, results = [], []
    for index, weight in enumerate(_weights(k, n, copies)):
        parameter = ops.parameter([m, k], np.float32, name=f"x{index}")
        parameters.append(parameter)
        results.append(ops.matmul(parameter, ops.constant(weight), False, False))
    return ov.Model(results, parameters, "gemms")


def openvino_kernels(m: int, k: int, n: int, threads: int) -> list[Kernel]:
    """OpenVINO MatMul at f32 and bf16 inference precision, and int8 after ``nncf.quantize``."""
    import nncf
    import openvino as ov

    core = ov.Core()
    copies = copies_for(k, n)
    xs = _inputs(m, k, copies)
    model = _openvino_model(m, k, n, copies)
    calibration = nncf.Dataset([tuple(_inputs(m, k, copies, seed)) for seed in range(4)])
    with quiet(stderr=True):
        int8_model = nncf.quantize(_openvino_model(m, k, n, copies), calibration, subset_size=4)
    capabilities = set(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    kernels = []
    for precision, ir, hint in (("fp32", model, "f32"), ("bf16", model, "bf16"), ("int8 (static, nncf.quantize)", int8_model, "f32")):
        if hint == "bf16" and "BF16" not in capabilities:
            continue
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads}
        request = core.compile_model(ir, "CPU", config).create_infer_request()
        kernels.append(Kernel("OpenVINO", precision, "MatMul", copies, lambda request=request: request.infer(xs)))
    return kernels


BACKENDS: dict[str, Callable[..., list[Kernel]]] = {
    "onnxruntime": lambda m, k, n, threads, workdir: onnx_kernels(m, k, n, threads, workdir),
    "tflite": lambda m, k, n, threads, workdir: tflite_kernels(m, k, n, threads),
    "openvino": lambda m, k, n, threads, workdir: openvino_kernels(m, k, n, threads),
}


def build_kernels(m: int, k: int, n: int, threads: int, backends: tuple[str, ...]) -> tuple[list[Kernel], list[str]]:
    """Every backend's kernels for one shape, and one line per backend that could not build them."""
    kernels, problems = [], []
    for name in backends:
        with tempfile.TemporaryDirectory(prefix="vitedge-gemm-") as folder:
            try:
                kernels += BACKENDS[name](m, k, n, threads, Path(folder))
            except Exception as error:  # a backend that is missing or fails is a line in the report
                problems.append(f"{name} {m}×{k}×{n}: {type(error).__name__}: {' '.join(str(error).split())[:200]}")
    return kernels, problems
