"""The TFLite format's ``placement`` hook: which ops the XNNPACK delegate took and which stayed on builtin kernels.

The interpreter is opened as the runtime opens it (:class:`vitedge.runtime.backends.tflite.TFLiteBackend`:
default delegates, the same threads). Its op list (``_get_ops_details``, the one place LiteRT shows
delegation, as the backend's ``xnnpack`` property already uses) holds the model's ops followed by one
``DELEGATE`` node per delegated partition; a model op belongs to a partition when it lies between the
partition's inputs and outputs. LiteRT does not log why XNNPACK declines an op, so the reason
given is what the op's tensors show (a type XNNPACK does not compute, or an op it has no kernel for).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vitedge.runtime.backends.tflite import default_threads, find_runtime
from vitedge.runtime.manifest import Manifest
from vitedge.runtime.native_noise import native_noise_hidden
from vitedge.runtime.placement import OpPlacement, Placement

DELEGATE = "DELEGATE"
XNNPACK = "XNNPACK delegate"
BUILTIN = "CPU (LiteRT builtin kernel)"
#: Tensor types XNNPACK computes (float, and quantized 8-bit integers); int32 shape operands are constants.
XNNPACK_TYPES = ("float32", "float16", "int8", "uint8", "int32")
WEIGHT_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "BATCH_MATMUL")


def delegated_ops(ops: list[dict[str, Any]]) -> set[int]:
    """Indices of the model ops inside a delegate partition: those a DELEGATE node's outputs come from,
    walking back to its inputs."""
    producer = {int(t): op["index"] for op in ops if op["op_name"] != DELEGATE for t in op["outputs"]}
    covered: set[int] = set()
    for delegate in (op for op in ops if op["op_name"] == DELEGATE):
        stop = {int(t) for t in delegate["inputs"]}
        pending, seen = [int(t) for t in delegate["outputs"]], set()
        while pending:
            tensor = pending.pop()
            if tensor in seen or tensor in stop or tensor not in producer:
                continue
            seen.add(tensor)
            covered.add(producer[tensor])
            pending += [int(t) for t in ops[producer[tensor]]["inputs"] if t >= 0]
    return covered


def _types(op: dict[str, Any], tensors: dict[int, dict]) -> list[str]:
    return [np.dtype(tensors[int(t)]["dtype"]).name for t in (*op["inputs"], *op["outputs"]) if t >= 0]


def precision_of(op: dict[str, Any], tensors: dict[int, dict]) -> str:
    """What an op computes in, from its tensors' types (a weight op's weight is input 1)."""
    inputs = [np.dtype(tensors[int(t)]["dtype"]).name for t in op["inputs"] if t >= 0]
    if op["op_name"] in WEIGHT_OPS and len(inputs) > 1:
        if inputs[0] in ("int8", "uint8"):
            return "int8"
        if inputs[1] in ("int8", "uint8"):  # int4 weights read as int8 here; blockwise ones have a block size
            block = tensors[int(op["inputs"][1])]["quantization_parameters"].get("block_size", 0)
            return f"blockwise weights ({block}), dynamic int8" if block else "int8 weights, dynamic int8"
    if {"int8", "uint8", "int16"} & set(inputs) and op["op_name"] not in ("QUANTIZE",):
        return "int8" if "int16" not in inputs else "int16"
    return {"float32": "fp32", "float16": "fp16"}.get(inputs[0], "") if inputs else ""


def why_not_delegated(op: dict[str, Any], tensors: dict[int, dict], delegated: bool) -> str:
    """The reason an op stayed on a builtin kernel, as far as its tensors tell."""
    if not delegated:
        return "no XNNPACK delegate was applied to this model by this interpreter"
    odd = sorted(set(_types(op, tensors)) - set(XNNPACK_TYPES))
    if odd:
        return (f"XNNPACK does not take {'/'.join(odd)} tensors (it computes float and 8-bit quantized ones); "
                "LiteRT does not log why")
    return f"XNNPACK declined this {op['op_name']} (no kernel for it with these tensors or options); LiteRT does not log why"


def short_name(tensor_name: str) -> str:
    """A tensor name without package paths and vitedge's wrappers: ``ViTModel_vit/ViTLayer_0/ViTMLP_mlp;1``."""
    first = tensor_name.split(";;")[0]
    parts = [segment.rsplit(".", 1)[-1] for segment in first.split("/") if not segment.startswith("vitedge.")]
    return "/".join(parts) or tensor_name


def _open(model_path: Path, num_threads: int | None) -> tuple[Any, str]:
    runtime = find_runtime()
    with native_noise_hidden():
        interpreter = runtime.interpreter_class(model_path=os.fspath(model_path), num_threads=num_threads or default_threads())
        interpreter.allocate_tensors()
    return interpreter, f"{runtime.package} {runtime.version}"


def tflite_placement(folder: Path, manifest: Manifest, *, device: str | None = None,
                     num_threads: int | None = None) -> Placement:
    """Every op of the model, on XNNPACK or on a builtin kernel, with its precision."""
    interpreter, runtime = _open(Path(folder) / manifest.model_file, num_threads)
    ops = interpreter._get_ops_details()  # private, but no public API says which delegate took what
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    covered = delegated_ops(ops)
    any_delegate = any(op["op_name"] == DELEGATE for op in ops)
    placed = []
    for op in ops:
        if op["op_name"] == DELEGATE:
            continue
        inside = op["index"] in covered
        name = short_name(tensors[int(op["outputs"][0])]["name"]) if len(op["outputs"]) else ""
        placed.append(OpPlacement(op["index"], name, op["op_name"], XNNPACK if inside else BUILTIN,
                                  precision_of(op, tensors), not inside,
                                  "" if inside else why_not_delegated(op, tensors, any_delegate)))
    partitions = sum(op["op_name"] == DELEGATE for op in ops)
    return Placement(
        artifact=str(folder), runtime=runtime, preferred=XNNPACK, ops=tuple(placed),
        how="the interpreter's op list after the default delegates were applied (DELEGATE partitions)",
        notes=(f"XNNPACK runs the model in {partitions} partition(s)",) if partitions else (),
    )
