"""DINOv2's position embeddings at the export size, computed once.

DINOv2 resizes its position-embedding table to the input's patch grid on every forward pass (a
bicubic interpolation of a parameter). An exported graph has a fixed input size, so the result is a
constant: this rewrite computes it once, with transformers' own ``interpolate_pos_encoding`` (the
numbers are the ones the model computes), and stores it as a frozen weight that the embeddings add.
The graph then holds no resize at all: no bicubic Resize for onnxruntime's fp16 kernels to get wrong,
nothing for an edge converter to lower. Any other input size still interpolates, as before.
"""

from __future__ import annotations

import torch
from torch import nn

from vitedge.converters.rewrites.patching import Patches, patched

NAME = "position-table-at-export-size"
#: Embedding modules whose forward adds ``interpolate_pos_encoding(embeddings, height, width)``.
EMBEDDINGS = ("Dinov2Embeddings", "Dinov2WithRegistersEmbeddings")
TABLE = "position_embeddings_at_export"
_METHOD = "interpolate_pos_encoding"


def apply(model: nn.Module, image_size: int, patches: Patches) -> int:
    """Fix the position table of every DINOv2 embedding module in ``model`` for ``image_size`` inputs;
    returns how many were rewritten."""
    count = 0
    for module in model.modules():
        if type(module).__name__ in EMBEDDINGS and not patched(module, _METHOD):
            patches.constant(module, TABLE, _table(module, image_size))
            patches.method(module, _METHOD, _make_lookup(image_size))
            count += 1
    return count


def _table(module: nn.Module, image_size: int) -> torch.Tensor:
    """What ``interpolate_pos_encoding`` returns for a square ``image_size`` input, in float32."""
    patch_height, patch_width = module.patch_embeddings.patch_size
    tokens = (image_size // patch_height) * (image_size // patch_width) + 1
    dim = module.position_embeddings.shape[-1]
    embeddings = torch.zeros(1, tokens, dim, dtype=module.position_embeddings.dtype)
    with torch.no_grad():
        table = type(module).interpolate_pos_encoding(module, embeddings, image_size, image_size)
    return table.float()


def _make_lookup(image_size: int):
    def interpolate_pos_encoding(self: nn.Module, embeddings: torch.Tensor, height: int, width: int) -> torch.Tensor:
        if (height, width) != (image_size, image_size):  # another size: interpolate as transformers does
            return type(self).interpolate_pos_encoding(self, embeddings, height, width)
        return getattr(self, TABLE).to(embeddings.dtype)

    return interpolate_pos_encoding
