"""BatchNorm folded into the convolution before it, so the weights Core ML compresses are the module's own.

coremltools folds an inference BatchNorm into the preceding convolution itself, under a name of its own
(``const_88``): the folded weight is then compressed, and the simulated validation, which puts every
compressed weight back into the torch module by name, cannot place it. Folding first, in torch
(``torch.nn.utils.fusion.fuse_conv_bn_eval``), gives Core ML the weight it would have made, under the
convolution's name. MobileViT and MobileViT V2 need it: every convolution of theirs is followed by one.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batch_norms(model: nn.Module) -> int:
    """Fold each eval-mode BatchNorm2d into its layer's convolution (Hugging Face conv layers: a module with
    ``convolution`` then ``normalization``); returns how many were folded."""
    folded = 0
    for module in model.modules():
        conv, norm = getattr(module, "convolution", None), getattr(module, "normalization", None)
        if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and not (conv.training or norm.training):
            module.convolution = fuse_conv_bn_eval(conv, norm)
            module.normalization = nn.Identity()
            folded += 1
    return folded
