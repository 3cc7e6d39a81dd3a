"""The ONNX format's ``placement`` hook: onnxruntime's node → execution provider assignment.

The documented way to see it (onnxruntime "Profiling tools"): a session with ``enable_profiling``
records, for one run, every node of the optimized graph that executed, with its ``provider`` and the
types of its inputs. The session is made as the runtime's backend makes it (all graph optimizations),
with the providers asked for, the first being the preferred one; onnxruntime's own log lines about
placement (its verbose "Node placements" and its warning when nodes leave the preferred provider) are
captured and quoted.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from vitedge.errors import BackendUnavailableError
from vitedge.runtime.manifest import Manifest
from vitedge.runtime.native_noise import native_stderr
from vitedge.runtime.placement import OpPlacement, Placement

CPU = "CPUExecutionProvider"
#: Ops whose weights onnxruntime keeps in n bits whatever their input types say.
NBITS_OPS = {"MatMulNBits": "int4 weights"}
_FLOATS = {"float": "fp32", "float16": "fp16", "bfloat16": "bf16", "double": "fp64"}
_PLACEMENT_LOG = ("VerifyEachNodeIsAssignedToAnEp", "not assigned to the preferred execution providers")


def providers_for(device: str | None) -> list[str]:
    """``--device`` as onnxruntime providers, best first (comma-separated names; default: CPU)."""
    asked = [name.strip() for name in (device or CPU).split(",") if name.strip()]
    available = ort.get_available_providers()
    missing = [name for name in asked if name not in available]
    if missing:
        raise BackendUnavailableError(
            f"onnxruntime {ort.__version__} here has no {', '.join(missing)} (it has: {', '.join(available)})",
            hint="install the onnxruntime build with that provider (e.g. onnxruntime-gpu for CUDAExecutionProvider)",
        )
    return asked


def precision_of(op_type: str, input_types: Sequence[str]) -> str:
    """What a node computes in, from its op and the element types of its inputs."""
    if op_type in NBITS_OPS:
        return NBITS_OPS[op_type]
    types = set(input_types)
    if types & {"int8", "uint8"} and op_type not in ("QuantizeLinear", "DynamicQuantizeLinear"):
        return "int8"
    for name, label in _FLOATS.items():
        if name in types:
            return label
    return ""


def _profile(path: Path, manifest: Manifest, providers: list[str], num_threads: int | None,
             log: list[str]) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="vitedge-placement-") as work:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(work, "profile")
        options.log_severity_level = 0  # verbose: onnxruntime logs its node placements at this level only
        if num_threads:
            options.intra_op_num_threads = num_threads
        shape = [1 if size is None else size for size in manifest.input.shape]
        with native_stderr(log):
            session = ort.InferenceSession(os.fspath(path), options, providers=providers)
            session.run(None, {manifest.input.name: np.zeros(shape, np.float32)})
            profile = session.end_profiling()
            del session  # its destructor logs too
        with open(profile) as handle:
            events = json.load(handle)
    return [event for event in events if event.get("cat") == "Node" and event["name"].endswith("_kernel_time")]


def onnx_placement(folder: Path, manifest: Manifest, *, device: str | None = None,
                   num_threads: int | None = None) -> Placement:
    """Every node onnxruntime ran for one input, with its provider and precision."""
    providers = providers_for(device)
    log: list[str] = []
    events = _profile(Path(folder) / manifest.model_file, manifest, providers, num_threads, log)
    quoted = [line.split("] ", 1)[-1].strip() for line in log if any(key in line for key in _PLACEMENT_LOG)]
    warning = next((line for line in quoted if "not assigned" in line), "")
    ops = []
    for index, event in enumerate(events):
        args = event["args"]
        types = [name for entry in args.get("input_type_shape", []) for name in entry]
        provider = args.get("provider", "")
        fallback = provider != providers[0]
        reason = warning or f"onnxruntime assigned it to {provider}: {providers[0]} took no {args['op_name']} node here"
        ops.append(OpPlacement(index, event["name"].removesuffix("_kernel_time"), args["op_name"], provider,
                               precision_of(args["op_name"], types), fallback, reason if fallback else ""))
    return Placement(
        artifact=str(folder), runtime=f"onnxruntime {ort.__version__}", preferred=providers[0], ops=tuple(ops),
        how="onnxruntime session profiling (enable_profiling) of one run of the optimized graph",
        notes=tuple(line for line in quoted if line and line != "Node placements" and line != warning),
    )
