"""Export to Core ML: an ML program (.mlpackage) for iOS and macOS, a classifier Xcode and Vision understand.

torch.jit.trace → ``coremltools.convert`` (fp32 or fp16 compute, deployment target from
``--target``) → weight compression (:mod:`vitedge.converters.coreml.quantize`) → the classifier
(``ClassifierConfig`` with the labels) → metadata → ``model.mlpackage``.

The input is a MultiArray ``pixel_values`` (1, 3, H, W) of normalized floats, or with
``input_type="image"`` an image ``image`` (RGB, H x W) that Vision can feed camera frames into;
the normalization is then inside the model (:mod:`vitedge.converters.coreml.image`).
Outputs: ``classLabel`` (the top label), ``classLabel_probs`` (label → softmax probability),
``logits`` (1, C) and ``embedding`` (1, D), the last two fp32.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vitedge._version import __version__
from vitedge.converters.adapters import TwoOutputClassifier
from vitedge.converters.coreml.batchnorm import fold_batch_norms
from vitedge.converters.coreml.compat import (
    check_target,
    coremltools,
    deployment_target,
    program_of,
    quiet,
)
from vitedge.converters.coreml.image import ImageInputPlan, fold_std_into_patch_embedding
from vitedge.converters.coreml.quantize import (
    MODEL_PREFIX,
    CoreMLRecipe,
    check_keep_float,
    compress,
    float_weights,
    get_recipe,
    not_weights,
)
from vitedge.converters.export_types import ExportedModel, ExportOptions
from vitedge.converters.loading import SourceModel
from vitedge.converters.rewrites import apply_rewrites
from vitedge.errors import ConversionError, UsageError, VitedgeError
from vitedge.runtime.manifest import InputSpec, OutputsSpec

PACKAGE_NAME = "model.mlpackage"
ARRAY_INPUT = "pixel_values"
IMAGE_INPUT = "image"
PROBABILITIES = "probabilities"  # consumed by the classifier, which outputs CLASS_LABEL and CLASS_PROBS
LOGITS_NAME = "logits"
EMBEDDING_NAME = "embedding"
CLASS_LABEL = "classLabel"
CLASS_PROBS = CLASS_LABEL + "_probs"  # the name coremltools gives the classifier's probability dictionary
INPUT_TYPES = ("float", "image")


class CoreMLHead(nn.Module):
    """``forward(x) -> (softmax probabilities, logits, embedding)``: what is traced for Core ML."""

    def __init__(self, classifier: TwoOutputClassifier) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, embedding = self.classifier(pixel_values)
        return torch.softmax(logits, dim=-1), logits, embedding


def coreml_module(source: SourceModel, plan: ImageInputPlan | None) -> CoreMLHead:
    """A copy of the source model as Core ML will see it: the std folded in for an image input, BatchNorms
    folded into their convolutions, and the export rewrites applied for good (the simulation then runs what
    was converted, weight for weight)."""
    model = copy.deepcopy(source.model).float().eval()
    apply_rewrites(model, source.image_size)
    fold_batch_norms(model)
    if plan is not None and plan.folded_std is not None:
        fold_std_into_patch_embedding(model, plan.folded_std)
    return CoreMLHead(TwoOutputClassifier(model)).eval()


def class_labels(source: SourceModel, num_classes: int) -> list[str]:
    """The labels in output order (``LABEL_i`` where the config names none)."""
    return [source.labels.get(index, f"LABEL_{index}") for index in range(num_classes)]


def export_coreml(source: SourceModel, workdir: Path, options: ExportOptions) -> ExportedModel:
    """Convert ``source`` into ``workdir/model.mlpackage``.

    Raises:
        UsageError: an unknown target, a target too old for the precision, or an input type Core ML lacks.
        ConversionError: coremltools failed.
    """
    recipe = get_recipe(options.precision)
    check_keep_float(recipe, options.keep_float)
    target = check_target(options.target or recipe.minimum_target, minimum=recipe.minimum_target,
                          precision=options.precision)
    if options.input_type not in INPUT_TYPES:
        raise UsageError(f"Core ML takes --input-type float or image, not {options.input_type!r}",
                         hint="image: Vision feeds camera frames, normalization in the model; float: a MultiArray")
    plan = ImageInputPlan.for_spec(source.preprocess) if options.input_type == "image" else None
    module = coreml_module(source, plan)
    size = source.image_size
    with torch.no_grad():
        _, logits, embedding = module(torch.zeros(1, 3, size, size))
    labels = class_labels(source, logits.shape[1])
    try:
        mlmodel = _convert(module, size, plan, recipe, target, labels, options.keep_float)
    except VitedgeError:
        raise
    except Exception as error:
        reason = " ".join(str(error).split())[:300]
        raise ConversionError(f"Core ML conversion failed ({type(error).__name__}: {reason})") from error
    _describe(mlmodel, source, options.precision, labels, plan)
    with quiet():
        mlmodel.save(str(workdir / PACKAGE_NAME))
    files = tuple(sorted(p.relative_to(workdir).as_posix() for p in (workdir / PACKAGE_NAME).rglob("*") if p.is_file()))
    ct = coremltools()
    return ExportedModel(
        files=files,
        entry=PACKAGE_NAME,
        input=_input_spec(plan, size),
        outputs=OutputsSpec(logits=LOGITS_NAME, embedding=EMBEDDING_NAME, embedding_size=embedding.shape[1],
                            num_classes=logits.shape[1]),
        preprocess=None if plan is None else dataclasses.replace(
            source.preprocess, layout="NHWC", channel_order="RGB", normalization_in_model=True
        ),
        recipe={
            "minimum_deployment_target": target,
            **recipe.to_dict(),
            **({"float_layers": list(options.keep_float)} if options.keep_float else {}),
            "input": {"type": "multiArray"} if plan is None else {"type": "image", **plan.to_dict()},
            "classifier": {"label_output": CLASS_LABEL, "probabilities_output": CLASS_PROBS,
                           "probabilities": "softmax of the logits"},
        },
        tools={"torch": torch.__version__, "coremltools": ct.__version__},
    )


def _convert(module: CoreMLHead, size: int, plan: ImageInputPlan | None, recipe: CoreMLRecipe, target: str,
             labels: list[str], keep_float: tuple[str, ...] = ()) -> Any:
    ct = coremltools()
    shape = (1, 3, size, size)
    if plan is None:
        model_input = ct.TensorType(name=ARRAY_INPUT, shape=shape, dtype=np.float32)
    else:
        model_input = ct.ImageType(name=IMAGE_INPUT, shape=shape, scale=plan.scale, bias=list(plan.bias),
                                   color_layout=getattr(ct.colorlayout, plan.color_layout))
    precision = {"fp32": ct.precision.FLOAT32, "fp16": ct.precision.FLOAT16}[recipe.compute_precision]
    with quiet(), torch.no_grad():
        traced = torch.jit.trace(module, torch.zeros(shape))
        mlmodel = ct.convert(
            traced, inputs=[model_input],
            outputs=[ct.TensorType(name=name, dtype=np.float32) for name in (PROBABILITIES, LOGITS_NAME, EMBEDDING_NAME)],
            minimum_deployment_target=deployment_target(target), compute_precision=precision,
            convert_to="mlprogram", skip_model_load=True,
        )
    layers = [name.removeprefix(MODEL_PREFIX) for name, layer in module.named_modules()
              if name.startswith(MODEL_PREFIX) and isinstance(layer, (nn.Linear, nn.Conv2d))]
    kept = float_weights(mlmodel, recipe, keep_float, layers) + (not_weights(mlmodel, module) if recipe.method else ())
    mlmodel = compress(mlmodel, recipe, kept)
    # The classifier goes on last: coremltools' weight compression does not take classifier models.
    with quiet():
        return ct.convert(
            program_of(mlmodel),
            classifier_config=ct.ClassifierConfig(labels, predicted_feature_name=CLASS_LABEL,
                                                  predicted_probabilities_output=PROBABILITIES),
            minimum_deployment_target=deployment_target(target),
            compute_precision=ct.precision.FLOAT32,  # add no casts: the program already has its precision
            pass_pipeline=ct.PassPipeline.EMPTY, convert_to="mlprogram", skip_model_load=True,
        )


def _describe(mlmodel: Any, source: SourceModel, precision: str, labels: list[str], plan: ImageInputPlan | None) -> None:
    """Metadata Xcode shows, and what an app needs to know without the manifest."""
    random_init = " Random-init weights: for latency work, predictions are meaningless." if source.info.weights == "random-init" else ""
    mlmodel.author = f"vitedge {__version__}"
    mlmodel.version = __version__
    mlmodel.short_description = (
        f"{source.info.model}: {source.model.config.model_type} image classifier, {len(labels)} classes, "
        f"{precision} ({source.info.weights} weights).{random_init}"
    )
    mlmodel.user_defined_metadata.update({
        "vitedge.version": __version__,
        "vitedge.format": "coreml",
        "vitedge.precision": precision,
        "vitedge.source": source.info.model,
        "vitedge.weights": source.info.weights,
        "vitedge.labels": json.dumps(labels, ensure_ascii=False),
        "vitedge.preprocess": json.dumps(source.preprocess.to_dict()),
    })
    if plan is None:
        mlmodel.input_description[ARRAY_INPUT] = (
            "RGB image as normalized floats (1, 3, H, W), preprocessed as vitedge.preprocess says"
        )
    else:
        mlmodel.input_description[IMAGE_INPUT] = (
            "RGB image, already resized (and cropped) as vitedge.preprocess says; normalization is in the model"
        )
    mlmodel.output_description[CLASS_LABEL] = "the most probable label"
    mlmodel.output_description[CLASS_PROBS] = "softmax probability of each label"
    mlmodel.output_description[LOGITS_NAME] = "class scores before the softmax (1, classes)"
    mlmodel.output_description[EMBEDDING_NAME] = "the [CLS] embedding after the final LayerNorm (1, hidden size)"


def _input_spec(plan: ImageInputPlan | None, size: int) -> InputSpec:
    if plan is None:
        return InputSpec(name=ARRAY_INPUT, layout="NCHW", dtype="float32", shape=(1, 3, size, size), dynamic_batch=False)
    return InputSpec(name=IMAGE_INPUT, layout="NHWC", dtype="uint8", shape=(1, size, size, 3), dynamic_batch=False)
