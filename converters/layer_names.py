"""Format-neutral layer names: the torch module paths ``vitedge diagnose`` prints and ``--keep-float`` takes.

A quantized op is named after the torch module it came from (``vit.layers.3.mlp.fc1``), whatever the
format calls it inside (an ONNX node ``/vit/layers.3/mlp/fc1/MatMul``, a TFLite tensor, a Core ML
weight). Each format maps these names onto its own ops. A ``--keep-float`` pattern is a name, a glob
(``vit.layers.3.*``), or a module that holds several (``vit.layers.3``: the whole block).

Torch free: the CLI and the format packages read it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence

from vitedge.errors import UsageError, did_you_mean

#: An encoder block in a module path: ``vit.layers.3``, ``vit.encoder.layer.3``, ``blocks.3``.
BLOCK = re.compile(r"(?:^|\.)(?:layers?|blocks?)\.(\d+)(?=\.|$)")


def block_index(module_path: str) -> int | None:
    """The encoder block a module belongs to, or None (embeddings, final norm, head)."""
    found = BLOCK.search(module_path)
    return int(found.group(1)) if found else None


def onnx_module_path(node_name: str) -> str | None:
    """The module path in an ONNX node name of the TorchScript exporter, or None when it has no scope.

    ``/vit/layers.0/attention/q_proj/MatMul_quant`` → ``vit.layers.0.attention.q_proj``: the scope is
    the module path with ``/`` between called modules (a ModuleList child keeps its ``layers.0``).
    """
    if not node_name.startswith("/") or node_name.count("/") < 2:
        return None
    return ".".join(node_name.strip("/").split("/")[:-1])


def matches(name: str, pattern: str) -> bool:
    """Whether ``pattern`` (a name, a glob, or a module holding ``name``) selects ``name``."""
    return fnmatch.fnmatchcase(name, pattern) or name.startswith(pattern + ".")


def parse_patterns(values: Iterable[str]) -> tuple[str, ...]:
    """``--keep-float`` values (repeated and/or comma-separated) as a tuple of patterns."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def select(patterns: Sequence[str], names: Sequence[str], *, where: str) -> tuple[str, ...]:
    """The ``names`` that ``patterns`` select, in their order.

    Raises:
        UsageError: a pattern selects none of them (naming the closest name and a few examples).
    """
    for pattern in patterns:
        if not any(matches(name, pattern) for name in names):
            examples = ", ".join(list(names)[:3]) or "none"
            raise UsageError(
                f"--keep-float {pattern!r} names no quantized op of {where}{did_you_mean(pattern, names)}",
                hint=f"use the names `vitedge diagnose` prints (here e.g. {examples}), a glob such as "
                     "'vit.layers.3.*', or a whole block such as 'vit.layers.3'",
            )
    return tuple(name for name in names if any(matches(name, pattern) for pattern in patterns))


def keep_float_layers(patterns: Sequence[str], layers: Iterable[str], *, precision: str,
                      quantizes: bool) -> tuple[str, ...]:
    """The weight layers (module paths, as ``vitedge diagnose`` prints them) ``--keep-float`` names, checked
    before a slow conversion.

    Raises:
        UsageError: the precision quantizes nothing (fp32), or a pattern names no layer.
    """
    if not patterns:
        return ()
    if not quantizes:
        raise UsageError(f"--keep-float applies to reduced precisions, not {precision}",
                         hint=f"{precision} keeps every op in float already")
    return select(patterns, sorted(set(layers)), where="this model")
