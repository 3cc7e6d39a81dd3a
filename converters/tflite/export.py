"""Export to TFLite (LiteRT) with litert-torch: PyTorch to .tflite directly, no TensorFlow.

One signature (``serving_default``) with one input, ``pixel_values``, and two outputs, ``logits`` and
``embedding``. litert-torch exports static shapes (a dynamic batch dimension fails to lower in
litert-torch 0.10, and the batch-1 graph cannot be resized: its reshapes have the batch baked in),
so the model takes batch 1 and the runtime runs a batch image by image.

The input is NCHW float by default; ``input_layout="NHWC"`` takes NHWC (mobile pipelines) and
``input_type="uint8"`` takes the resized 0..255 pixels as uint8 and normalizes in the model (what
Android camera pipelines feed). Both are a small torch wrapper in front of the ViT, so the changed
preprocessing goes into the manifest. Precisions are quantization recipes from
:mod:`vitedge.converters.tflite.quantize`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vitedge.converters.calibration import CalibrationSet, load_calibration
from vitedge.converters.diagnose.probe import ModelLayout
from vitedge.converters.diagnose.reference import model_layout
from vitedge.converters.export_types import ExportedModel, ExportOptions
from vitedge.converters.loading import SourceModel
from vitedge.converters.tflite.budget import quantize_within_budget
from vitedge.converters.tflite.float_layers import aeq_float_scopes, pt2e_float_modules, selected_layers
from vitedge.converters.tflite.quantize import (
    CHOSEN,
    SIGNATURE,
    TFLiteRecipe,
    aeq_quantize,
    pt2e_quantize,
    recipe_for,
)
from vitedge.errors import ConversionError, UsageError, VitedgeError
from vitedge.runtime.manifest import InputSpec, OutputsSpec
from vitedge.runtime.native_noise import debugging, native_noise_hidden
from vitedge.runtime.preprocess_spec import PreprocessSpec

MODEL_FILE = "model.tflite"
INPUT_NAME = "pixel_values"
LOGITS_NAME = "logits"
EMBEDDING_NAME = "embedding"
INPUT_TYPES = ("float", "uint8")
#: Calibration is PT2E's HistogramObserver (ranges that minimize the L2 quantization error).
CALIBRATION_METHOD = "histogram"
BASE_TOOLS = ("torch", "litert-torch", "ai-edge-litert")
QUANTIZER_TOOLS = {"none": (), "ai-edge-quantizer": ("ai-edge-quantizer",), "pt2e": ("torchao",)}


class EdgeClassifier(nn.Module):
    """The ViT behind the artifact's input convention, returning ``{"logits", "embedding"}``.

    Args:
        classifier: ``forward(pixel_values NCHW normalized) -> (logits, embedding)``.
        spec: The artifact's preprocessing: its ``layout`` is the input layout, and with
            ``normalization_in_model`` the input is 0..255 pixels that the module rescales and normalizes.
    """

    def __init__(self, classifier: nn.Module, spec: PreprocessSpec) -> None:
        super().__init__()
        self.classifier = classifier
        self.channels_last = spec.layout == "NHWC"
        self.normalize = spec.normalization_in_model
        scale, shift = _normalization(spec)
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        x = pixel_values
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        if self.normalize:
            x = x.to(torch.float32) * self.scale + self.shift
        logits, embedding = self.classifier(x)
        return {LOGITS_NAME: logits, EMBEDDING_NAME: embedding}


def _normalization(spec: PreprocessSpec) -> tuple[list[float], list[float]]:
    """Per-channel (scale, shift) with ``pixel * scale + shift`` = rescale then normalize, in input channel order."""
    rescale = spec.rescale_factor if spec.rescale_factor is not None else 1.0
    mean = spec.mean if spec.mean is not None else (0.0, 0.0, 0.0)
    std = spec.std if spec.std is not None else (1.0, 1.0, 1.0)
    scale = [rescale / s for s in std]
    shift = [-m / s for m, s in zip(mean, std)]
    if spec.channel_order == "BGR":  # mean and std are in RGB order; the input is BGR
        scale, shift = scale[::-1], shift[::-1]
    return scale, shift


def artifact_preprocess(spec: PreprocessSpec, options: ExportOptions) -> PreprocessSpec:
    """The source's preprocessing with the export's input layout and normalization placement."""
    if options.input_type not in INPUT_TYPES:
        raise UsageError(
            f"TFLite does not take --input-type {options.input_type}",
            hint=f"choose one of: {', '.join(INPUT_TYPES)} (image is a Core ML input type)",
        )
    return dataclasses.replace(spec, layout=options.input_layout, normalization_in_model=options.input_type == "uint8")


def export_tflite(source: SourceModel, workdir: Path, options: ExportOptions) -> ExportedModel:
    """Export ``source`` as ``workdir/model.tflite`` at ``options.precision`` (recipe: :data:`CHOSEN`).

    Raises:
        UsageError: an input type TFLite cannot take.
        ConversionError: litert-torch or the quantizer failed.
    """
    return export_with_recipe(source, workdir, options, recipe_for(options.precision))


def export_with_recipe(source: SourceModel, workdir: Path, options: ExportOptions, recipe: TFLiteRecipe) -> ExportedModel:
    """Export with a given recipe (:func:`export_tflite` picks the chosen one; benchmarks try them all)."""
    spec = artifact_preprocess(source.preprocess, options)
    module = EdgeClassifier(source.two_outputs(), spec).eval()
    input_dtype = torch.uint8 if spec.normalization_in_model else torch.float32
    sample = {INPUT_NAME: torch.zeros(_input_shape(spec, source.image_size), dtype=input_dtype)}
    layout = model_layout(source.model)
    kept = selected_layers(recipe, options.keep_float, layout)
    calibration = load_calibration(spec, options.calibration, options.calibration_samples) if recipe.calibrated else None

    def convert(float_layers: tuple[str, ...]) -> bytes:
        batches = None if calibration is None else _calibration_batches(calibration, input_dtype)
        return _convert_with_recipe(module, sample, recipe, batches, (*kept, *float_layers), layout)

    budget = None
    try:
        with _quiet_conversion():
            if options.max_accuracy_drop is None:
                model_bytes = convert(())
            else:
                candidates = [layer for layer in layout.layers.values() if layer not in kept]
                model_bytes, budget = quantize_within_budget(source, module, spec, options, candidates, convert)
    except VitedgeError:
        raise
    except Exception as error:  # litert-torch, jax and the quantizers raise many types
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise ConversionError(
            f"TFLite {recipe.precision} export failed ({recipe.name}: {type(error).__name__}: {reason})",
            hint="rerun with --debug and report it; another --precision may work meanwhile",
        ) from error
    (workdir / MODEL_FILE).write_bytes(model_bytes)
    with native_noise_hidden():
        model_input, outputs = describe_io(model_bytes, spec)
    choice = CHOSEN[recipe.precision]
    return ExportedModel(
        files=(MODEL_FILE,),
        input=model_input,
        outputs=outputs,
        recipe={
            "converter": "litert-torch",
            "signature": SIGNATURE,
            "batch": "static 1: the runtime runs a batch image by image",
            **recipe.describe(),
            "why": choice.why if choice.recipe == recipe.name else "a measured alternative, not the default",
            "attention": getattr(source.model.config, "_attn_implementation", None),
            **({"float_layers": list(kept)} if kept else {}),
            **({"accuracy_budget": budget} if budget else {}),
        },
        tools=_tool_versions(recipe),
        preprocess=None if spec == source.preprocess else spec,
        calibration=None if calibration is None else calibration.describe(CALIBRATION_METHOD),
    )


def _convert_with_recipe(module: nn.Module, sample: dict[str, torch.Tensor], recipe: TFLiteRecipe, batches,
                         float_layers: tuple[str, ...] = (), layout: ModelLayout | None = None) -> bytes:
    """Convert and quantize, leaving ``float_layers`` (module paths; ``layout`` maps them to ops) in float."""
    if recipe.quantizer == "pt2e":
        quantized, quant_config = pt2e_quantize(module, sample, recipe, batches, pt2e_float_modules(float_layers))
        return _litert_convert(quantized, sample, quant_config=quant_config)
    model_bytes = float_flatbuffer(module, sample)
    if recipe.quantizer == "ai-edge-quantizer":
        scopes = aeq_float_scopes(model_bytes, layout, float_layers, module.classifier.model) if float_layers else ()
        model_bytes = aeq_quantize(model_bytes, recipe, batches, INPUT_NAME, scopes)
    return model_bytes


@contextlib.contextmanager
def _quiet_conversion() -> Iterator[None]:
    """Hide the native log lines and torch pytree's LeafSpec deprecation warnings litert-torch causes (not with --debug)."""
    with native_noise_hidden(), warnings.catch_warnings():
        if not debugging():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        yield


def _input_shape(spec: PreprocessSpec, image_size: int) -> tuple[int, int, int, int]:
    height, width = spec.output_size or (image_size, image_size)
    return (1, 3, height, width) if spec.layout == "NCHW" else (1, height, width, 3)


def _calibration_batches(calibration: CalibrationSet, dtype: torch.dtype) -> Iterator[np.ndarray]:
    """Batches of one in the model's input dtype (uint8 pixels are already whole numbers)."""
    for batch in calibration.batches(1):
        yield batch.astype(np.uint8) if dtype == torch.uint8 else batch


def _tool_versions(recipe: TFLiteRecipe) -> dict[str, str]:
    versions = {}
    for package in BASE_TOOLS + QUANTIZER_TOOLS[recipe.quantizer]:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return versions


# -- litert-torch conversion, with the float result kept for the next precision -------------------


@contextlib.contextmanager
def _no_progress() -> Iterator[None]:
    """litert-torch prints a progress tree unless LITERT_TORCH_SHOW_PROGRESS is off."""
    previous = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "0"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)
        else:
            os.environ["LITERT_TORCH_SHOW_PROGRESS"] = previous


def _litert_convert(module: nn.Module, sample: dict[str, torch.Tensor], quant_config=None) -> bytes:
    import litert_torch

    with _no_progress(), torch.no_grad():
        edge_model = litert_torch.convert(module, sample_kwargs=sample, quant_config=quant_config)
        return edge_model.model_content()


_float_cache: dict[str, bytes] = {}


def float_flatbuffer(module: EdgeClassifier, sample: dict[str, torch.Tensor]) -> bytes:
    """The float .tflite of ``module``; converting the same weights again (another precision) reuses it.

    litert-torch conversion is the slow step, and fp32, fp16, int8-dynamic and int4 all quantize the
    same float flatbuffer. The last result is kept, keyed by a hash of the weights and the input.
    """
    key = _fingerprint(module, sample)
    if key not in _float_cache:
        _float_cache.clear()  # one model at a time: a ViT-L flatbuffer is over a gigabyte
        _float_cache[key] = _litert_convert(module, sample)
    return _float_cache[key]


def _fingerprint(module: nn.Module, sample: dict[str, torch.Tensor]) -> str:
    digest = hashlib.blake2b(digest_size=20)
    for name, tensor in sample.items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
    for name, tensor in module.state_dict(keep_vars=False).items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    for name in ("scale", "shift"):
        digest.update(getattr(module, name).numpy().tobytes())
    model = getattr(module.classifier, "model", None)
    config = getattr(model, "config", None)
    variant = getattr(model, "vitedge_variant", None)  # e.g. token merging: the same weights, another graph
    digest.update(repr((module.channels_last, module.normalize, getattr(config, "_attn_implementation", None),
                        variant)).encode())
    return digest.hexdigest()


# -- what the flatbuffer says about its input and outputs -----------------------------------------


def describe_io(model_bytes: bytes, spec: PreprocessSpec) -> tuple[InputSpec, OutputsSpec]:
    """The manifest's input and outputs, read from the model itself (dtypes, shapes, quantization)."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=model_bytes).get_signature_runner(SIGNATURE)
    (model_input,) = runner.get_input_details().values()
    outputs = runner.get_output_details()
    scale, zero_point = _quantization(model_input)
    input_spec = InputSpec(
        name=INPUT_NAME,
        layout=spec.layout,
        dtype=np.dtype(model_input["dtype"]).name,
        shape=tuple(int(n) for n in model_input["shape"]),
        dynamic_batch=False,
        scale=scale,
        zero_point=zero_point,
    )
    quantization = {}
    for key in (LOGITS_NAME, EMBEDDING_NAME):
        scale, zero_point = _quantization(outputs[key])
        if scale is not None:
            quantization[key] = {"dtype": np.dtype(outputs[key]["dtype"]).name, "scale": scale, "zero_point": zero_point}
    return input_spec, OutputsSpec(
        logits=LOGITS_NAME,
        embedding=EMBEDDING_NAME,
        embedding_size=int(outputs[EMBEDDING_NAME]["shape"][-1]),
        num_classes=int(outputs[LOGITS_NAME]["shape"][-1]),
        quantization=quantization or None,
    )


def _quantization(details: dict) -> tuple[float | None, int | None]:
    """(scale, zero point) of a per-tensor quantized tensor; (None, None) for float or raw integers."""
    scale, zero_point = details["quantization"]
    if np.dtype(details["dtype"]).kind == "f" or not scale:
        return None, None
    return float(scale), int(zero_point)
