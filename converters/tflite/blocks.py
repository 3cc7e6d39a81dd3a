"""Blockwise int4 on TFLite: the weight layers int4 blocks cannot take, given int8 per-channel weights instead.

ai-edge-quantizer's blockwise recipes quantize fully connected weights in blocks along the input
dimension, and

- refuse the whole model when one layer's input size is not a multiple of the block (Swin's 16-wide
  tiny stages, MobileViT-S's 144- and 240-wide transformers);
- leave convolutions in float32: MobileViT's and MobileViT V2's convolutions (in V2 every attention
  and feed-forward layer is a 1x1 convolution) and ViT's patch embedding would keep float weights in
  an "int4" model.

Those layers get the int8-dynamic recipe's int8 per-channel weights (per output channel for
convolutions); every other weight stays in int4 blocks.
"""

from __future__ import annotations

from vitedge.converters.tflite.op_names import WEIGHT_OPS, FlatbufferOps
from vitedge.runtime.native_noise import native_noise_hidden

#: Weight ops ai-edge-quantizer quantizes per channel but not in blocks.
CHANNEL_ONLY_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def int8_scopes(float_model: bytes, block_size: int) -> tuple[str, ...]:
    """ai-edge-quantizer scopes (output tensor names, ``;``-joined) of the weight ops of ``float_model``
    that blocks of ``block_size`` cannot quantize: convolutions, and blockwise ops whose blocked
    dimension is not a multiple of ``block_size``."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer.utils.tfl_flatbuffer_utils import TFL_OP_TO_BLOCKWISE_WEIGHT_QUANTIZED_DIM

    blocked_dims = {str(getattr(op, "value", op)): dim for op, dim in TFL_OP_TO_BLOCKWISE_WEIGHT_QUANTIZED_DIM.items()}
    with native_noise_hidden():
        ops = FlatbufferOps.of(Interpreter(model_content=float_model))
    scopes = []
    for op in ops.ops:
        if op["op_name"] not in WEIGHT_OPS or len(op["inputs"]) < 2 or op["inputs"][1] < 0:
            continue
        shape = ops.tensors[int(op["inputs"][1])]["shape"]
        dim = blocked_dims.get(op["op_name"])
        unblockable = dim is not None and len(shape) > dim and shape[dim] % block_size
        if op["op_name"] in CHANNEL_ONLY_OPS or unblockable:
            scopes.append(";".join(ops.name(t) for t in op["outputs"]))
    return tuple(scopes)
