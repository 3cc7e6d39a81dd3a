"""What a format's ``intermediates`` hook receives and returns (torch free).

A hook (:attr:`vitedge.formats.Format.intermediates`, ``"module:function"``) is called as
``hook(folder, manifest, inputs, layout, source)`` and returns an :class:`ArtifactProbe`: the artifact's
own tensors at each :class:`Tap` of ``layout`` for ``inputs`` (a batch preprocessed as the artifact's
manifest says), and the ops it stores in reduced precision, by their torch module paths. ``source`` is
the torch model, for formats that can only be simulated here (Core ML off macOS); the others read
the artifact through their runtime and ignore it. A format that cannot expose a tap leaves it out and
says why in ``missing``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Tap:
    """One place the torch model and the artifact are compared.

    Attributes:
        name: ``embeddings``, ``block 0`` … ``block N-1``, ``final norm`` or ``logits``.
        module: The torch module whose output it is (``vit.layers.3``); None for the logits.
        chain: The modules called on the way, a ModuleList child with its list (``("vit", "layers.3")``):
            how exporters that record the call stack name what a module computes.
    """

    name: str
    module: str | None
    chain: tuple[str, ...] = ()

    @property
    def is_block(self) -> bool:
        return self.name.startswith("block ")


@dataclass(frozen=True)
class ModelLayout:
    """Where to look in an artifact of this model: the taps in order, and its weight layers.

    Attributes:
        taps: Embeddings, blocks, final norm, logits.
        layers: Call chain → module path of every Linear and Conv layer (the ops a recipe quantizes).
        head: The classifier's module path (``classifier``), when it is one Linear layer.
    """

    taps: tuple[Tap, ...]
    layers: Mapping[tuple[str, ...], str] = field(default_factory=dict)
    head: str | None = None

    def layer_for_chain(self, chain: tuple[str, ...]) -> str | None:
        """The module path of a weight layer from its call chain, ModuleList names optional
        (TFLite records ``("vit", "0", "mlp", "fc1")`` for ``("vit", "layers.0", "mlp", "fc1")``)."""
        if chain in self.layers:
            return self.layers[chain]
        short = {tuple(part.split(".")[-1] for part in key): path for key, path in self.layers.items()}
        return short.get(chain)


@dataclass(frozen=True)
class ArtifactProbe:
    """The artifact's side of a diagnosis.

    Attributes:
        tensors: Tap name → array, hidden states ``(N, tokens, hidden)`` and logits ``(N, classes)``, float32.
        quantized_ops: Module path → how the artifact stores/computes it (``"int8 weights, dynamic int8
            activations"``), for every op in reduced precision.
        how: How the tensors were read, for the report (``"extra graph outputs on a copy of the graph"``).
        missing: Tap name → why the format cannot expose it.
        keep_float: Whether the format's recipe for this precision takes ``--keep-float``.
    """

    tensors: dict[str, np.ndarray]
    quantized_ops: dict[str, str] = field(default_factory=dict)
    how: str = ""
    missing: dict[str, str] = field(default_factory=dict)
    keep_float: bool = True
