"""Export to ExecuTorch: torch.export → XNNPACK quantizer (PT2E) → XNNPACK delegation → ``model.pte``.

One method, ``forward``, with one input (``pixel_values``, NCHW float32, batch 1) and two outputs in
order, ``logits`` and ``embedding``. The batch is static: a dynamic batch makes ExecuTorch plan memory
for the largest batch allowed, and edge devices run one image at a time; the runtime runs a batch
image by image. Precisions are recipes from :mod:`vitedge.converters.executorch.quantize`; the
manifest records the recipe and what XNNPACK delegated (:mod:`vitedge.converters.executorch.delegation`),
and a conversion that leaves a matmul outside XNNPACK says so in a warning.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vitedge.converters.calibration import load_calibration
from vitedge.converters.executorch.attention import attention_kernel
from vitedge.converters.executorch.delegation import (
    DelegationRecord,
    delegation_record,
    warn_if_matmuls_undelegated,
)
from vitedge.converters.executorch.layernorm import layer_norms_for_xnnpack
from vitedge.converters.executorch.quantize import ExecuTorchRecipe, chosen_for, pt2e_quantize, recipe_for
from vitedge.converters.export_types import ExportedModel, ExportOptions
from vitedge.converters.layer_names import keep_float_layers
from vitedge.converters.loading import SourceModel
from vitedge.errors import ConversionError, VitedgeError
from vitedge.runtime.manifest import InputSpec, OutputsSpec
from vitedge.runtime.native_noise import debugging

MODEL_FILE = "model.pte"
METHOD = "forward"
INPUT_NAME = "pixel_values"
LOGITS_NAME = "logits"
EMBEDDING_NAME = "embedding"
#: Calibration is XNNPACKQuantizer's static config: HistogramObserver activation ranges.
CALIBRATION_METHOD = "histogram"
TOOLS = ("torch", "executorch", "torchao")
#: Loggers that report each lowering step at WARNING level ("Disabled validating the partitioner.").
CHATTY_LOGGERS = ("root",)
#: Where the Hugging Face model sits in the exported module (TwoOutputClassifier.model).
MODEL_PREFIX = "model."


def export_executorch(source: SourceModel, workdir: Path, options: ExportOptions) -> ExportedModel:
    """Export ``source`` as ``workdir/model.pte`` at ``options.precision`` (recipe: :func:`.quantize.recipe_for`).

    Raises:
        ConversionError: executorch is not installed, or torch.export, the quantizer or the lowering failed.
    """
    return export_with_recipe(source, workdir, options, recipe_for(options.precision, _family(source)))


def export_with_recipe(source: SourceModel, workdir: Path, options: ExportOptions,
                       recipe: ExecuTorchRecipe) -> ExportedModel:
    """Export with a given recipe (:func:`export_executorch` picks the chosen one; the benchmarks build peers)."""
    if importlib.util.find_spec("executorch") is None:
        raise ConversionError("ExecuTorch conversion needs executorch, which is not installed",
                              hint="pip install 'vitedge[convert]'")
    spec = source.preprocess
    height, width = spec.output_size or (source.image_size, source.image_size)
    sample = (torch.zeros(1, 3, height, width),)
    calibration = load_calibration(spec, options.calibration, options.calibration_samples) if recipe.calibrated else None
    module = source.two_outputs().eval()
    kept = float_layers(recipe, options.keep_float, source.model)
    try:
        with _quiet_conversion(), attention_kernel(source.model, recipe.attention) as kernel, \
                layer_norms_for_xnnpack(source.model, recipe.layer_norm) as layer_norm:
            with torch.no_grad():
                logits, embedding = module(*sample)
            program, delegation = lower(module, sample, recipe, None if calibration is None else calibration.batches(1),
                                         float_modules=tuple(MODEL_PREFIX + layer for layer in kept))
    except VitedgeError:
        raise
    except Exception as error:  # torch.export, torchao and exir raise many types
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise ConversionError(
            f"ExecuTorch {recipe.precision} export failed ({recipe.name}: {type(error).__name__}: {reason})",
            hint="rerun with --debug and report it; another --precision may work meanwhile",
        ) from error
    (workdir / MODEL_FILE).write_bytes(program)
    warn_if_matmuls_undelegated(delegation, f"ExecuTorch {recipe.precision} ({recipe.name})")
    choice = chosen_for(recipe.precision, _family(source))
    return ExportedModel(
        files=(MODEL_FILE,),
        input=InputSpec(name=INPUT_NAME, layout="NCHW", dtype="float32", shape=tuple(sample[0].shape),
                        dynamic_batch=False),
        outputs=OutputsSpec(logits=LOGITS_NAME, embedding=EMBEDDING_NAME, embedding_size=int(embedding.shape[-1]),
                            num_classes=int(logits.shape[-1])),
        recipe={
            "exporter": "torch.export",
            "partitioner": "XnnpackPartitioner",
            "method": METHOD,
            "batch": "static 1: the runtime runs a batch image by image",
            **recipe.describe(),
            "attention_kernel": kernel,
            **({"layer_norm": layer_norm} if layer_norm else {}),
            "why": choice.why if choice.recipe == recipe.name else "a measured alternative, not the default",
            "delegation": delegation.to_dict(),
            **({"float_layers": list(kept)} if kept else {}),
        },
        tools=_tool_versions(),
        calibration=None if calibration is None else calibration.describe(CALIBRATION_METHOD),
    )


def _family(source: SourceModel) -> str | None:
    return getattr(source.model.config, "model_type", None)


def float_layers(recipe: ExecuTorchRecipe, patterns: Sequence[str], model: nn.Module) -> tuple[str, ...]:
    """The weight layers (module paths in ``model``, as ``vitedge diagnose`` prints them) ``--keep-float`` names.

    Raises:
        UsageError: the recipe quantizes nothing (fp32), or a pattern names no layer.
    """
    if not patterns:
        return ()
    from vitedge.converters.diagnose.reference import model_layout

    return keep_float_layers(patterns, model_layout(model).layers.values(), precision=recipe.precision,
                             quantizes=recipe.quantization != "none")


def lower(module: nn.Module, sample: tuple[torch.Tensor, ...], recipe: ExecuTorchRecipe,
          calibration: Iterator[np.ndarray] | None, *,
          float_modules: Sequence[str] = ()) -> tuple[bytes, DelegationRecord]:
    """The ExecuTorch program (.pte bytes) of ``module`` by ``recipe``, and what XNNPACK delegated
    (``float_modules``: qualified names in ``module`` the quantizer leaves float)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with torch.no_grad():
        if recipe.quantization != "none":
            module = pt2e_quantize(module, sample, recipe, calibration, float_modules)
        program = torch.export.export(module, sample)
        edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    delegation = delegation_record(edge)  # before to_executorch, which adds memory-planning nodes
    return edge.to_executorch().buffer, delegation


@contextlib.contextmanager
def _quiet_conversion() -> Iterator[None]:
    """Hide the deprecation warnings and per-step log lines the export stack emits (not with --debug)."""
    if debugging():
        yield
        return
    loggers = [logging.getLogger(name if name != "root" else None) for name in CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", module=r"executorch\.|torch\.|torchao\.")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def _tool_versions() -> dict[str, str]:
    versions = {}
    for package in TOOLS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return versions
