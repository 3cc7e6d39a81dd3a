"""The TFLite format's ``intermediates`` hook: every tap's tensor through LiteRT's preserve-all-tensors mode.

The interpreter (the runtime's, :func:`vitedge.runtime.backends.tflite.find_runtime`) is opened with
``experimental_preserve_all_tensors=True`` and without its default XNNPACK delegate: inside a
delegated subgraph the intermediate tensors are never written, so the builtin kernels run instead.
Their numerics can differ a little from XNNPACK's (dynamic int8 above all); the report says so and
gives the cosine between these logits and the runtime's own. A tap's tensor is the last one its
module's ops (:mod:`.op_names` reads the module from the tensor names) hand to ops outside it.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from vitedge.converters.diagnose.probe import ArtifactProbe, ModelLayout, Tap
from vitedge.converters.tflite.op_names import FlatbufferOps, layer_weights, weight_op_modules
from vitedge.errors import BackendUnavailableError
from vitedge.metrics import row_cosines
from vitedge.runtime.backends.tflite import SIGNATURE, default_threads, find_runtime
from vitedge.runtime.classifier import Classifier
from vitedge.runtime.manifest import Manifest
from vitedge.runtime.native_noise import native_noise_hidden


def _preserving_interpreter(model_path: Path) -> Any:
    runtime = find_runtime()
    module = importlib.import_module(runtime.interpreter_class.__module__)
    resolver = getattr(module, "OpResolverType", None)
    try:
        with native_noise_hidden():
            interpreter = runtime.interpreter_class(
                model_path=os.fspath(model_path), num_threads=default_threads(),
                experimental_preserve_all_tensors=True,
                experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            interpreter.allocate_tensors()
    except (TypeError, AttributeError) as error:
        raise BackendUnavailableError(
            f"{runtime.package} {runtime.version} cannot keep intermediate tensors ({error})",
            hint="pip install ai-edge-litert (LiteRT) to diagnose TFLite artifacts",
        ) from error
    return interpreter


def tap_tensors(ops: FlatbufferOps, taps: tuple[Tap, ...]) -> dict[str, int]:
    """Tap name → index of the tensor its module hands on last (3-D hidden states only)."""
    consumers: dict[int, set[int]] = {}
    for op in ops.ops:
        for tensor in op["inputs"]:
            consumers.setdefault(int(tensor), set()).add(op["index"])
    found = {}
    for tap in taps:
        if tap.module is None:
            continue
        scope = tuple(part.split(".")[-1] for part in tap.chain)
        inside = {op["index"] for op in ops.ops if ops.first_chain(op)[: len(scope)] == scope}
        leaving = [int(t) for op in ops.ops if op["index"] in inside for t in op["outputs"]
                   if consumers.get(int(t), set()) - inside and len(ops.tensors[int(t)]["shape"]) == 3]
        if leaving:
            found[tap.name] = leaving[-1]
    return found


def encode_input(batch: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return batch.astype(dtype)
    scale, zero_point = detail["quantization"]
    values = batch / scale + zero_point if scale else batch
    return np.clip(np.rint(values), np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)


def decode_output(values: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if np.dtype(detail["dtype"]).kind != "f" and scale:
        return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return values.astype(np.float32)


def _describe(manifest: Manifest, weight_dtype: str, module: str, head: str | None) -> str:
    recipe = manifest.conversion.recipe
    if weight_dtype == "float16":
        return "fp16 weights, fp32 compute"
    if module == head and "classifier_head" in recipe:
        weights = recipe["classifier_head"]
    else:
        weights = f"{recipe.get('weights', weight_dtype)} weights"
    return f"{weights}, {recipe.get('activations', 'float32')} activations"


def quantized_ops(ops: FlatbufferOps, layout: ModelLayout, manifest: Manifest, logits: int, *,
                  interpreter: Any = None, weights: dict[str, np.ndarray] | None = None) -> dict[str, str]:
    """Module path → how it is stored, for weight ops whose weight is not float32."""
    found = {}
    for index, module in weight_op_modules(ops, layout, logits, interpreter=interpreter, weights=weights).items():
        weight = ops.tensors[int(ops.ops[index]["inputs"][1])]
        dtype = np.dtype(weight["dtype"]).name
        if weight["name"].endswith("_dequant"):
            dtype = "float16"
        if dtype != "float32":
            found[module] = _describe(manifest, dtype, module, layout.head)
    return found


def tflite_intermediates(folder: Path, manifest: Manifest, inputs: np.ndarray, layout: ModelLayout,
                         source: Any = None) -> ArtifactProbe:
    """The artifact's tensor at every tap for ``inputs``, image by image (the models take batch 1)."""
    model_path = Path(folder) / manifest.model_file
    interpreter = _preserving_interpreter(model_path)
    runner = interpreter.get_signature_runner(SIGNATURE)
    model_input = runner.get_input_details()[manifest.input.name]
    logits_detail = runner.get_output_details()[manifest.outputs.logits]
    del runner  # a live runner keeps the interpreter from invoking
    ops = FlatbufferOps.of(interpreter)
    chosen = tap_tensors(ops, layout.taps)
    wanted = {**{name: ops.tensors[index] for name, index in chosen.items()}, "logits": logits_detail}
    parts: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
    for image in inputs:
        interpreter.set_tensor(model_input["index"], encode_input(image[None], model_input))
        interpreter.invoke()
        for name, detail in wanted.items():
            parts[name].append(decode_output(interpreter.get_tensor(detail["index"]), detail))
    tensors = {name: np.concatenate(values) for name, values in parts.items()}
    runtime_logits = Classifier.open(folder, verify=False).run(inputs)["logits"]
    agreement = float(row_cosines(runtime_logits, tensors["logits"]).min())
    scoped = [tap.name for tap in layout.taps if tap.module is not None and tap.name not in chosen]
    return ArtifactProbe(
        tensors=tensors,
        quantized_ops=quantized_ops(ops, layout, manifest, int(logits_detail["index"]), interpreter=interpreter,
                                    weights=layer_weights(source.model, layout) if source is not None else None),
        how=("LiteRT's preserve-all-tensors mode with its builtin kernels (XNNPACK keeps no intermediates); "
             f"min cosine of these logits with the runtime's XNNPACK logits: {agreement:.6f}"),
        missing={name: "no tensor of the flatbuffer is named after its module" for name in scoped},
    )
