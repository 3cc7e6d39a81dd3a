"""Export to OpenVINO IR (model.xml + model.bin): ``openvino.convert_model`` straight from the torch model.

One graph, input ``pixel_values`` (NCHW float, dynamic batch), outputs ``logits`` and ``embedding``.
The route is chosen by measurement (``python -m vitedge.benchmarks.studies.openvino_precisions --routes
preset:vit-base-patch16-224``): the torch module with its loaded attention kernel (transformers' default,
sdpa, which OpenVINO turns into its ScaledDotProductAttention op) ran ViT-B/16 in f32 at batch 1 in 493 ms
p50, with eager attention 514 ms, through the plain ONNX export 582 ms (batch 8: 4.1 s, 4.9 s, 4.4 s; one
thread, interleaved calls, on a shared 2-core AMD EPYC at load average 3-6: re-measure on a quiet machine).
The precisions' recipes (NNCF quantization, weight compression, fp16 weights) are in :mod:`.quantize`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from vitedge.converters.export_types import ExportedModel, ExportOptions
from vitedge.converters.loading import SourceModel
from vitedge.converters.openvino.compat import openvino, quiet, version
from vitedge.converters.openvino.quantize import FP16_WEIGHTS, SMOOTH_QUANT, quantize_model
from vitedge.errors import ConversionError, VitedgeError
from vitedge.runtime.manifest import InputSpec, OutputsSpec

MODEL_FILE = "model.xml"
WEIGHTS_FILE = "model.bin"
INPUT_NAME = "pixel_values"
LOGITS_NAME = "logits"
EMBEDDING_NAME = "embedding"


def export_openvino(source: SourceModel, workdir: Path, options: ExportOptions, *,
                    smooth_quant: bool = SMOOTH_QUANT) -> ExportedModel:
    """Export ``source`` to ``workdir/model.xml`` + ``model.bin`` at ``options.precision``.

    ``smooth_quant`` overrides the int8-static recipe's choice (:data:`.quantize.SMOOTH_QUANT`), for the study
    that measures it.

    Raises:
        ConversionError: openvino or nncf is missing, or the conversion or quantization failed.
    """
    ov = openvino()
    model, logits, embedding = torch_to_openvino(source)
    try:
        quantized = quantize_model(model, source, options, smooth_quant=smooth_quant)
        ov.save_model(quantized.model, str(workdir / MODEL_FILE),
                      compress_to_fp16=options.precision in FP16_WEIGHTS)
    except VitedgeError:
        raise
    except Exception as error:  # OpenVINO and NNCF raise their own exception types
        raise ConversionError(f"OpenVINO {options.precision} conversion failed ({type(error).__name__}: {error})") from error
    return ExportedModel(
        files=(MODEL_FILE, WEIGHTS_FILE),
        input=InputSpec(name=INPUT_NAME, layout="NCHW", dtype="float32",
                        shape=(None, 3, source.image_size, source.image_size), dynamic_batch=True),
        outputs=OutputsSpec(logits=LOGITS_NAME, embedding=EMBEDDING_NAME, embedding_size=embedding,
                            num_classes=logits),
        recipe={"converter": "openvino.convert_model (torch module)",
                "attention": source.model.config._attn_implementation, **quantized.recipe},
        tools={"torch": torch.__version__, "openvino": version("openvino"),
               **({"nncf": version("nncf")} if "tool" in quantized.recipe else {})},
        calibration=quantized.calibration,
    )


_fp32_cache: dict[str, tuple[Any, int, int]] = {}


def torch_to_openvino(source: SourceModel) -> tuple[Any, int, int]:
    """The fp32 ``openvino.Model`` of ``source`` with vitedge's input and output names and a dynamic batch,
    and the number of classes and the embedding size.

    Tracing is the slow step, and every precision starts from the same fp32 graph: the last one is
    kept, keyed by a hash of the weights, and each call gets a copy (NNCF changes models in place).
    """
    key = _fingerprint(source)
    if key not in _fp32_cache:
        _fp32_cache.clear()  # one model at a time
        _fp32_cache[key] = _convert(source)
    model, num_classes, embedding_size = _fp32_cache[key]
    return model.clone(), num_classes, embedding_size


def _convert(source: SourceModel) -> tuple[Any, int, int]:
    ov = openvino()
    size = source.image_size
    sample = torch.zeros(2, 3, size, size)
    wrapper = source.two_outputs()
    try:
        with torch.no_grad(), quiet():
            logits, embedding = wrapper(sample)
            model = ov.convert_model(wrapper, example_input=sample, input=[-1, 3, size, size])
    except Exception as error:
        raise ConversionError(f"openvino.convert_model failed ({type(error).__name__}: {error})") from error
    model.inputs[0].get_tensor().set_names({INPUT_NAME})
    for output, name in zip(model.outputs, (LOGITS_NAME, EMBEDDING_NAME)):
        output.get_tensor().set_names({name})
    return model, int(logits.shape[1]), int(embedding.shape[1])


def _fingerprint(source: SourceModel) -> str:
    digest = hashlib.blake2b(digest_size=20)
    config = source.model.config
    variant = getattr(source.model, "vitedge_variant", None)  # e.g. token merging: same weights, another graph
    digest.update(repr((type(source.model).__name__, source.image_size, config._attn_implementation, variant)).encode())
    for name, tensor in source.model.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()
