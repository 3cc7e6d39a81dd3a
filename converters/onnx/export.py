"""Export to ONNX: one graph, two outputs (logits, embedding), dynamic batch, opset >= 17.

The exporter settings are chosen by measurement (``benchmarks/studies/exporter_choice.py``, results in
``benchmarks/results/onnx_exporter.md``): the TorchScript-based exporter with eager attention
gives the fastest plain graph for ViT on CPU; the dynamo exporter remains selectable. By default
fp32 and fp16 graphs export attention as onnxruntime's fused ``Attention`` op, int8-dynamic as int8
q/k/v MatMuls into a fused ``MultiHeadAttention`` (measured faster than the plain graph and than a
fused ``QAttention``); int8-static and int4-weight quantize the plain graph's MatMuls
(``--graph plain`` keeps standard ONNX ops only everywhere). onnxruntime's offline
SkipLayerNorm/BiasGelu fusions are not applied: they measured slower (:mod:`.optimize`).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import onnx
import torch

from vitedge.converters.export_types import ExportedModel, ExportOptions
from vitedge.converters.loading import SourceModel
from vitedge.converters.onnx.attention import (
    ATTENTION,
    ATTENTION_DOMAIN,
    MULTI_HEAD_ATTENTION,
    fused_attention,
)
from vitedge.converters.token_merging_option import is_off
from vitedge.errors import ConversionError
from vitedge.runtime.manifest import InputSpec, OutputsSpec

INPUT_NAME = "pixel_values"
LOGITS_NAME = "logits"
EMBEDDING_NAME = "embedding"
MIN_OPSET = 17
#: The fused attention op each precision's graph has (:mod:`.attention`). fp32/fp16: ``Attention`` (QKV GEMM
#: inside). int8-dynamic: ``MultiHeadAttention`` after int8 q/k/v MatMuls, measured faster than the plain graph
#: and than ``QAttention`` (benchmarks/results/onnx_exporter.md). The other quantized precisions quantize the
#: plain graph's MatMuls.
FUSED_ATTENTION_OPS = {"fp32": ATTENTION, "fp16": ATTENTION, "int8-dynamic": MULTI_HEAD_ATTENTION}
FUSED_ATTENTION_PRECISIONS = tuple(FUSED_ATTENTION_OPS)
#: ONNX protobufs cannot exceed 2 GiB; larger models keep their weights in a side file.
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


@contextlib.contextmanager
def attention_implementation(model: torch.nn.Module, implementation: str):
    """Temporarily switch a transformers model's attention kernel (eager | sdpa)."""
    previous = model.config._attn_implementation
    model.set_attn_implementation(implementation)
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


def export_onnx(source: SourceModel, workdir: Path, options: ExportOptions) -> ExportedModel:
    """Export ``source`` to ``workdir/model.onnx`` at ``options.precision``.

    Stages: trace (with fused attention where the precision keeps it) → quantization (with calibration and an accuracy budget where asked).

    Raises:
        ConversionError: the exporter or quantizer failed, or the options ask for something ONNX
            cannot do here.
    """
    if options.opset < MIN_OPSET:
        raise ConversionError(
            f"opset {options.opset} is too old: LayerNormalization needs opset {MIN_OPSET}",
            hint=f"use --opset {MIN_OPSET} or newer",
        )
    precision = options.precision
    if options.keep_float:
        from vitedge.converters.onnx.precisions import check_keep_float

        check_keep_float(precision, options.keep_float)
    model_path = workdir / "model.onnx"
    fp32_path = model_path if precision == "fp32" else workdir / "fp32.onnx"
    fuse = options.graph == "optimized" and options.exporter == "torchscript" and precision in FUSED_ATTENTION_PRECISIONS
    # token-merged blocks add log(size) to the logits: only MultiHeadAttention (int8-dynamic) takes that bias here
    fuse = fuse and (is_off(options.token_merging) or FUSED_ATTENTION_OPS[precision] == MULTI_HEAD_ATTENTION)
    wrapper = source.two_outputs()
    sample = torch.zeros(2, 3, source.image_size, source.image_size)
    try:
        with attention_implementation(source.model, options.attention), torch.no_grad():
            logits, embedding = wrapper(sample)
            with fused_attention(source.model, FUSED_ATTENTION_OPS[precision]) if fuse else contextlib.nullcontext(0) as fused:
                _run_exporter(wrapper, sample, fp32_path, options, custom_ops=bool(fused))
    except ConversionError:
        raise
    except Exception as error:
        raise ConversionError(f"ONNX export failed ({type(error).__name__}: {error})") from error
    recipe: dict = {"exporter": options.exporter, "opset": options.opset, "attention": options.attention,
                    "graph": options.graph, "fused_attention_layers": fused}
    if fused:
        recipe["fused_attention_op"] = f"{ATTENTION_DOMAIN}.{FUSED_ATTENTION_OPS[precision]}"
    calibration = None
    if precision != "fp32":
        from vitedge.converters.onnx.precisions import quantize_artifact_model

        quantized = quantize_artifact_model(source, fp32_path, model_path, options)
        recipe.update(quantized.recipe)
        calibration = quantized.calibration
        fp32_path.unlink()
    files = _externalize_if_large(model_path)
    return ExportedModel(
        files=files,
        input=InputSpec(
            name=INPUT_NAME,
            layout="NCHW",
            dtype="float32",
            shape=(None, 3, source.image_size, source.image_size),
            dynamic_batch=True,
        ),
        outputs=OutputsSpec(
            logits=LOGITS_NAME, embedding=EMBEDDING_NAME, embedding_size=embedding.shape[1], num_classes=logits.shape[1]
        ),
        recipe=recipe,
        tools={"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": _ort_version()},
        calibration=calibration,
    )


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def _run_exporter(
    wrapper: torch.nn.Module, sample: torch.Tensor, path: Path, options: ExportOptions, *, custom_ops: bool = False
) -> None:
    names = {"input_names": [INPUT_NAME], "output_names": [LOGITS_NAME, EMBEDDING_NAME]}
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
        warnings.simplefilter("ignore")
        if options.exporter == "torchscript":
            axes = {name: {0: "batch"} for name in (INPUT_NAME, LOGITS_NAME, EMBEDDING_NAME)}
            torch.onnx.export(
                wrapper, (sample,), str(path), dynamo=False, opset_version=options.opset,
                dynamic_axes=axes, do_constant_folding=True,
                custom_opsets={ATTENTION_DOMAIN: 1} if custom_ops else None, **names,
            )
        elif options.exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=4096)
            program = torch.onnx.export(
                wrapper, (sample,), dynamo=True, opset_version=options.opset,
                dynamic_shapes=({0: batch},), optimize=True, verbose=False, **names,
            )
            program.save(str(path))
        else:
            raise ConversionError(f"unknown ONNX exporter {options.exporter!r}", hint="use torchscript or dynamo")


def _externalize_if_large(model_path: Path) -> tuple[str, ...]:
    """Keep the model in one file when it fits; otherwise move weights to model.onnx.data."""
    data_path = model_path.with_name(model_path.name + ".data")
    size = model_path.stat().st_size + (data_path.stat().st_size if data_path.exists() else 0)
    if size < EXTERNAL_DATA_THRESHOLD and not data_path.exists():
        return (model_path.name,)
    model = onnx.load(str(model_path))
    onnx.save_model(model, str(model_path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data_path.name, size_threshold=1024)
    return (model_path.name, data_path.name)
