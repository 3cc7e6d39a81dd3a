"""How much arithmetic a ViT is: its GEMMs (M×K×N, how many of each) and multiply-accumulates, from its config.

Counts one image (batch 1). A ViT with ``P = (image/patch)²`` patches, ``S = P + 1`` tokens (one more
for DeiT's distillation token), hidden size ``D`` and MLP size ``I`` runs, per encoder layer, the Q, K
and V projections and the attention output (4 GEMMs S×D×D), the MLP (S×D×I and S×I×D) and the two
activation×activation products of attention (S×S×D MACs each, over all heads); plus the patch embedding
(P×3p²×D) and the classifier head (1×D×labels). ViT-B/16-224: 17.56 GMAC.
Torch-free: reads the ``architecture`` a manifest records (or a config's same keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Model types whose encoder is the plain ViT layer counted here.
COUNTED_MODEL_TYPES = frozenset({"vit", "deit"})


@dataclass(frozen=True)
class Gemm:
    """``count`` matrix products of an (m×k) by a (k×n) matrix; ``role`` says which layers they are."""

    role: str
    m: int
    k: int
    n: int
    count: int

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n * self.count

    @property
    def shape(self) -> str:
        return f"{self.m}×{self.k}×{self.n}"


def vit_gemms(architecture: Mapping[str, Any]) -> list[Gemm] | None:
    """The GEMMs of one image through a plain ViT classifier; None for an architecture not counted here."""
    if architecture.get("model_type", "vit") not in COUNTED_MODEL_TYPES:
        return None
    try:
        hidden, layers = int(architecture["hidden_size"]), int(architecture["num_hidden_layers"])
        mlp, image, patch = int(architecture["intermediate_size"]), int(architecture["image_size"]), int(architecture["patch_size"])
    except (KeyError, TypeError, ValueError):
        return None
    patches = (image // patch) ** 2
    tokens = patches + (2 if architecture.get("model_type") == "deit" else 1)  # DeiT adds a distillation token
    return [
        Gemm("patch embedding", patches, 3 * patch * patch, hidden, 1),
        Gemm("attention projections (Q, K, V, output)", tokens, hidden, hidden, 4 * layers),
        Gemm("MLP up", tokens, hidden, mlp, layers),
        Gemm("MLP down", tokens, mlp, hidden, layers),
        Gemm("attention scores and mixing (activation×activation)", tokens, hidden, tokens, 2 * layers),
        Gemm("classifier head", 1, hidden, int(architecture.get("num_labels", 1000)), 1),
    ]


def vit_macs(architecture: Mapping[str, Any]) -> int | None:
    """Multiply-accumulates of one image (None: not a plain ViT)."""
    gemms = vit_gemms(architecture)
    return None if gemms is None else sum(gemm.macs for gemm in gemms)


def weight_gemm_shapes(architecture: Mapping[str, Any]) -> list[tuple[int, int, int]]:
    """The encoder's three weight-GEMM shapes (S×D×D, S×D×I, S×I×D): what a GEMM ceiling is measured on."""
    gemms = vit_gemms(architecture) or []
    return [(g.m, g.k, g.n) for g in gemms if g.role.startswith(("attention projections", "MLP"))]
