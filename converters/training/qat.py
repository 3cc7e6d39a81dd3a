"""Quantization-aware training: fake-quantize what the ONNX int8-static recipe quantizes.

The int8-static recipe (:mod:`vitedge.converters.onnx.quantize`) quantizes the inputs of the
MatMuls with weights, i.e. the encoder's ``nn.Linear`` layers (query, key, value, attention
output, MLP): per-channel symmetric int8 weights and per-tensor activations, laid out for this
CPU (:class:`~vitedge.converters.onnx.quantize.Int8Scheme`: S8S8 or U8S8 with reduce range).
:func:`prepare_qat` wraps exactly those layers in :class:`FakeQuantLinear`, which rounds weights
and inputs the way onnxruntime will (same integer ranges, same scale and zero-point arithmetic),
passes gradients straight through the rounding (STE), and learns each input's range with a
moving-average min/max observer. After training, :func:`strip_qat` puts the plain layers back
and returns the learned ranges; :mod:`vitedge.converters.training.qat_export` writes them into the QDQ
graph in place of calibrated ones. The classifier head (a Gemm in ONNX, not quantized) stays float.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from vitedge.converters.onnx.quantize import Int8Scheme
from vitedge.converters.training.models import encoder_layers
from vitedge.errors import UsageError

QAT_RECORD = "vitedge_qat.json"


@dataclass(frozen=True)
class QatConfig:
    """How inputs and weights are fake-quantized.

    Attributes:
        signed_activations: int8 (True) or uint8 (False) activations; None: this CPU's scheme.
        reduce_range: 7-bit weights (for CPUs without int8 dot products); None: this CPU's scheme.
        observer_momentum: Weight of each batch's min/max in the moving average of the input ranges.
    """

    signed_activations: bool | None = None
    reduce_range: bool | None = None
    observer_momentum: float = 0.05

    def __post_init__(self) -> None:
        if not isinstance(self.observer_momentum, float) or not 0 < self.observer_momentum <= 1:
            raise UsageError(f"observer_momentum must be in (0, 1], got {self.observer_momentum!r}")

    def resolved(self) -> QatConfig:
        """The config with this CPU's int8 scheme filled in."""
        scheme = Int8Scheme.for_cpu()
        return QatConfig(
            scheme.signed_activations if self.signed_activations is None else self.signed_activations,
            scheme.reduce_range if self.reduce_range is None else self.reduce_range,
            self.observer_momentum,
        )

    def integer_ranges(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """((activation qmin, qmax), (weight qmin, qmax)) as onnxruntime uses them."""
        activation = (-128, 127) if self.signed_activations else (0, 255)
        weight = (-64, 64) if self.reduce_range else (-127, 127)
        return activation, weight


def activation_qparams(rmin: torch.Tensor, rmax: torch.Tensor, qmin: int, qmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale (float32) and zero point (int32) of an asymmetric per-tensor range, as onnxruntime
    computes them (``quant_utils.compute_scale_zp``): the range always includes zero."""
    rmin = torch.clamp(rmin.double(), max=0.0)
    rmax = torch.clamp(rmax.double(), min=0.0)
    scale = (rmax - rmin) / (qmax - qmin)
    scale = torch.where(scale < torch.finfo(torch.float32).tiny, torch.ones_like(scale), scale)
    zero_point = torch.clamp(torch.round(qmin - rmin / scale), qmin, qmax)
    return scale.float().reshape(1), zero_point.int().reshape(1)


class FakeQuantLinear(nn.Module):
    """An ``nn.Linear`` whose weights and input are rounded to int8 in the forward pass (STE backward)."""

    def __init__(self, linear: nn.Linear, config: QatConfig) -> None:
        super().__init__()
        self.linear = linear
        (self.act_qmin, self.act_qmax), (self.weight_qmin, self.weight_qmax) = config.integer_ranges()
        self.momentum = config.observer_momentum
        self.register_buffer("input_min", torch.zeros(()))
        self.register_buffer("input_max", torch.zeros(()))
        self.register_buffer("observed", torch.zeros(()))  # 0 or 1; float, as DDP broadcasts buffers (gloo: no bool)

    def _observe(self, inputs: torch.Tensor) -> None:
        with torch.no_grad():
            low, high = inputs.detach().min().float(), inputs.detach().max().float()
            if not bool(self.observed):
                self.input_min.copy_(low)
                self.input_max.copy_(high)
                self.observed.fill_(1.0)
            else:
                self.input_min.lerp_(low, self.momentum)
                self.input_max.lerp_(high, self.momentum)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.training:
            self._observe(inputs)
        if not bool(self.observed):  # never trained: behave as float
            return self.linear(inputs)
        scale, zero_point = activation_qparams(self.input_min, self.input_max, self.act_qmin, self.act_qmax)
        quantized_inputs = torch.fake_quantize_per_tensor_affine(
            inputs.float(), scale.to(inputs.device), zero_point.to(inputs.device), self.act_qmin, self.act_qmax
        ).to(inputs.dtype)
        weight = self.linear.weight
        weight_scale = (weight.detach().abs().amax(dim=1).float() / self.weight_qmax).clamp(min=1e-12)
        quantized_weight = torch.fake_quantize_per_channel_affine(
            weight.float(), weight_scale, torch.zeros_like(weight_scale, dtype=torch.int32), 0,
            self.weight_qmin, self.weight_qmax,
        ).to(weight.dtype)
        return functional.linear(quantized_inputs, quantized_weight, self.linear.bias)

    def input_range(self) -> tuple[float, float]:
        return float(self.input_min), float(self.input_max)


def prepare_qat(model: nn.Module, config: QatConfig | None = None) -> QatConfig:
    """Wrap the encoder's linear layers in :class:`FakeQuantLinear`, in place; returns the resolved config."""
    resolved = (config or QatConfig()).resolved()
    wrapped = 0
    for layer in encoder_layers(model):
        for module in list(layer.modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(module, child_name, FakeQuantLinear(child, resolved))
                    wrapped += 1
    if not wrapped:
        raise UsageError(f"{type(model).__name__}: no linear layers to quantize in its encoder")
    return resolved


def qat_ranges(model: nn.Module) -> dict[str, tuple[float, float]]:
    """Learned input range of every fake-quantized layer, by the plain model's module name."""
    return {name: module.input_range() for name, module in model.named_modules() if isinstance(module, FakeQuantLinear)}


def strip_qat(model: nn.Module) -> dict[str, tuple[float, float]]:
    """Put the plain ``nn.Linear`` layers back (in place); returns their learned input ranges."""
    ranges = qat_ranges(model)
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, FakeQuantLinear):
                setattr(module, child_name, child.linear)
    return ranges


def qat_record(config: QatConfig, ranges: dict[str, tuple[float, float]]) -> dict:
    """The ``vitedge_qat.json`` a QAT run leaves beside the weights."""
    (act_qmin, act_qmax), (weight_qmin, weight_qmax) = config.integer_ranges()
    return {
        "schema": "vitedge.qat/1",
        "activations": {"type": "int8" if config.signed_activations else "uint8", "qmin": act_qmin, "qmax": act_qmax,
                        "granularity": "per-tensor, asymmetric", "observer": f"moving min/max, momentum {config.observer_momentum}"},
        "weights": {"type": "int8", "qmin": weight_qmin, "qmax": weight_qmax, "granularity": "per-channel, symmetric",
                    "reduce_range": config.reduce_range},
        "ranges": {name: [low, high] for name, (low, high) in ranges.items()},
    }
