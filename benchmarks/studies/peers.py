"""Peers: what a user gets without vitedge's conversions, packaged as artifacts so the harness runs them.

- onnxruntime's ``quantize_dynamic`` with its defaults, on a plain fp32 ONNX export (standard ONNX
  ops only: no onnxruntime fusions, which ``quantize_dynamic`` cannot read);
- litert-torch's default conversion: ``litert_torch.convert(model.eval(), (sample,))`` on the
  Hugging Face model as it is (batch 1, NCHW float; outputs as litert-torch names them);
- ExecuTorch's own XNNPACK recipe, as its documentation writes it (fp32 and int8-dynamic): torch.export
  of the model with its own attention kernel, XNNPACKQuantizer ``set_global``, ``to_edge_transform_and_lower``
  with the XnnpackPartitioner; vitedge's recipe differs by its attention rewrite (the manifests' delegation
  records show what each left to portable kernels);
- OpenVINO + NNCF with their defaults: ``openvino.convert_model`` of the Hugging Face model as it is, then
  ``nncf.quantize`` with default arguments on the calibration images vitedge's int8-static uses, saved with
  ``openvino.save_model`` (fp16 weights where not quantized); it runs in OpenVINO's default inference precision
  (bf16 on CPUs with AVX512-BF16 or AMX, else f32);
- PyTorch eager fp32 needs no artifact: it is the ``torch:MODEL`` target.

Each peer artifact reuses the fp32 artifact's manifest (preprocessing, labels, source) with its own
model file, input and outputs, and ``conversion.recipe.peer`` saying how it was made; it carries no
validation (peers are measured, not vouched for). Torch side: used by :mod:`vitedge.benchmarks.studies.publish`.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
from pathlib import Path

import numpy as np

from vitedge.converters.atomic import atomic_folder
from vitedge.converters.loading import SourceModel
from vitedge.runtime.manifest import FileEntry, InputSpec, Manifest, OutputsSpec, read_manifest

ORT_PEER = "onnxruntime.quantization.quantize_dynamic(model.onnx) with its defaults, on a plain fp32 export"
LITERT_PEER = "litert_torch.convert(model.eval(), (sample,)): the Hugging Face model as it is, default options"
EXECUTORCH_PEER = ("ExecuTorch's documented XNNPACK recipe: torch.export of the model with its own attention, "
                   "XNNPACKQuantizer set_global (per-channel), to_edge_transform_and_lower(XnnpackPartitioner())")
#: The precisions the ExecuTorch peer is built at, and its recipe for each (vitedge.converters.executorch.quantize).
EXECUTORCH_PEER_RECIPES = {"fp32": "executorch-docs-fp32", "int8-dynamic": "executorch-docs-dynamic-wi8"}
OPENVINO_PEER = ("openvino.convert_model(model) + nncf.quantize(model, calibration images) with their defaults, "
                 "OpenVINO's default inference precision")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _peer_manifest(template: Manifest, folder: Path, *, format: str, precision: str, model_file: str,
                   input: InputSpec, outputs: OutputsSpec, recipe: str, tool: str) -> Manifest:
    conversion = dataclasses.replace(template.conversion, recipe={"peer": recipe}, tools={tool: _version(tool)},
                                     calibration=None)
    return dataclasses.replace(template, format=format, precision=precision, files=(FileEntry.of(folder, model_file),),
                               input=input, outputs=outputs, conversion=conversion, validation=None, entry=None,
                               selfcheck=None)  # the template's self-check is of another model


def plain_onnx_export(source: SourceModel, out: str | os.PathLike) -> Path:
    """``out``: an fp32 ONNX artifact with standard ONNX ops only (vitedge's ``graph="plain"``)."""
    from vitedge.converters import ExportOptions, convert

    return convert(source, to="onnx", out=out, overwrite=True, validation_samples=8,
                   options=ExportOptions(graph="plain")).path


def ort_quantize_dynamic_peer(plain_artifact: str | os.PathLike, out: str | os.PathLike) -> Path:
    """``out``: a plain fp32 ONNX artifact's model through ``quantize_dynamic`` with default arguments."""
    from onnxruntime.quantization import quantize_dynamic

    template = read_manifest(plain_artifact)
    with atomic_folder(Path(out), overwrite=True) as work:
        quantize_dynamic(str(Path(plain_artifact) / template.model_file), str(work / "model.onnx"))
        manifest = _peer_manifest(template, work, format="onnx", precision="int8-dynamic", model_file="model.onnx",
                                  input=template.input, outputs=template.outputs, recipe=ORT_PEER, tool="onnxruntime")
        manifest.write(work)
    return Path(out)


def litert_default_peer(source: SourceModel, fp32_artifact: str | os.PathLike, out: str | os.PathLike) -> Path:
    """``out``: litert-torch's default conversion of ``source``'s Hugging Face model (needs litert-torch)."""
    import litert_torch
    import torch
    from ai_edge_litert.interpreter import Interpreter

    template = read_manifest(fp32_artifact)
    height, width = template.preprocess.output_size or (source.image_size, source.image_size)
    sample = torch.zeros(1, 3, height, width)
    with torch.no_grad():
        model_bytes = litert_torch.convert(source.model.eval(), (sample,)).model_content()
    runner = Interpreter(model_content=model_bytes).get_signature_runner("serving_default")
    (input_name, detail), = runner.get_input_details().items()
    outputs = runner.get_output_details()
    logits = "logits" if "logits" in outputs else next(iter(outputs))
    with atomic_folder(Path(out), overwrite=True) as work:
        (work / "model.tflite").write_bytes(model_bytes)
        model_input = InputSpec(name=input_name, layout="NCHW", dtype=np.dtype(detail["dtype"]).name,
                                shape=tuple(int(n) for n in detail["shape"]), dynamic_batch=False)
        model_outputs = OutputsSpec(logits=logits, num_classes=int(outputs[logits]["shape"][-1]))
        manifest = _peer_manifest(template, work, format="tflite", precision="fp32", model_file="model.tflite",
                                  input=model_input, outputs=model_outputs, recipe=LITERT_PEER, tool="litert-torch")
        manifest.write(work)
    return Path(out)


def openvino_nncf_default_peer(source: SourceModel, fp32_artifact: str | os.PathLike, out: str | os.PathLike) -> Path:
    """``out``: the Hugging Face model through ``openvino.convert_model`` and ``nncf.quantize`` with their defaults.

    The calibration images are vitedge's int8-static ones (the built-in calibration split, the default
    count); the manifest's recipe names no inference precision, so the backend leaves OpenVINO's default.
    """
    import warnings

    import nncf
    import openvino as ov
    import torch

    from vitedge.converters.calibration import load_calibration

    template = read_manifest(fp32_artifact)
    height, width = template.preprocess.output_size or (source.image_size, source.image_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's tracer warnings
        model = ov.convert_model(source.model.eval(), example_input=torch.zeros(1, 3, height, width))
    calibration = load_calibration(template.preprocess)
    quantized = nncf.quantize(model, nncf.Dataset(list(calibration.batches(1))))
    (model_input,), logits = quantized.inputs, quantized.outputs[0]
    with atomic_folder(Path(out), overwrite=True) as work:
        ov.save_model(quantized, str(work / "model.xml"))
        manifest = _peer_manifest(
            template, work, format="openvino", precision="int8-static", model_file="model.xml",
            input=InputSpec(name=model_input.get_any_name(), layout="NCHW", dtype="float32",
                            shape=(None, 3, height, width), dynamic_batch=True),
            outputs=OutputsSpec(logits=logits.get_any_name(), num_classes=int(logits.get_partial_shape()[-1].get_length())),
            recipe=OPENVINO_PEER, tool="openvino")
        tools = {"openvino": _version("openvino"), "nncf": _version("nncf")}
        manifest = dataclasses.replace(manifest, files=(FileEntry.of(work, "model.xml"), FileEntry.of(work, "model.bin")),
                                       conversion=dataclasses.replace(manifest.conversion, tools=tools))
        manifest.write(work)
    return Path(out)


def executorch_docs_peer(source: SourceModel, precision: str, out: str | os.PathLike) -> Path:
    """``out``: ExecuTorch's documented XNNPACK recipe of ``source`` at ``precision`` (needs executorch).

    The same outputs as vitedge's artifact (logits and embedding), so the harness compares like with like;
    the manifest keeps the recipe and its delegation record, with ``peer`` saying what it is.
    """
    from vitedge.converters.executorch.export import export_with_recipe
    from vitedge.converters.executorch.quantize import get_recipe
    from vitedge.converters.export_types import ExportOptions
    from vitedge.converters.stages import describe
    from vitedge.formats import get_format

    recipe = get_recipe(EXECUTORCH_PEER_RECIPES[precision])
    with atomic_folder(Path(out), overwrite=True) as work:
        exported = export_with_recipe(source, work, ExportOptions(precision=precision), recipe)
        manifest = describe(get_format("executorch"), precision, work, exported, source)
        recipe_record = {"peer": EXECUTORCH_PEER, **manifest.conversion.recipe}
        manifest = dataclasses.replace(manifest, conversion=dataclasses.replace(manifest.conversion, recipe=recipe_record))
        manifest.write(work)
    return Path(out)
