"""Instance-level changes to a torch model that can be undone: the mechanics every rewrite shares."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

#: Every value a rewrite computes ends its name with this, so exporters can tell it from the model's own
#: weights (Core ML keeps such constants out of weight compression: they are activations, computed once).
AT_EXPORT = "_at_export"


class Patches:
    """Methods and constants put on module instances, taken off again by :meth:`undo` (last first).

    A method set here shadows the class's own for that instance only (other instances, other models
    and the class itself are untouched), and deep copies of the module carry it, bound to the copy.
    """

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def method(self, module: nn.Module, name: str, function: Callable[..., Any]) -> None:
        """Make ``module.name`` call ``function(module, ...)``."""
        module.__dict__[name] = types.MethodType(function, module)
        self._undo.append(lambda: module.__dict__.pop(name, None))

    def constant(self, module: nn.Module, name: str, value: torch.Tensor) -> None:
        """Register ``value`` as a frozen parameter ``module.name`` (ending in :data:`AT_EXPORT`), so that
        exporters store it as a constant and ``module.to(dtype)`` casts it like the weights."""
        _check_name(name)
        module.register_parameter(name, nn.Parameter(value.detach().clone(), requires_grad=False))
        self._undo.append(lambda: module._parameters.pop(name, None))

    def buffer(self, module: nn.Module, name: str, value: torch.Tensor) -> None:
        """Register ``value`` as a non-persistent buffer ``module.name`` (an index, a mask: not a weight; the
        name ends in :data:`AT_EXPORT`)."""
        _check_name(name)
        module.register_buffer(name, value.detach().clone(), persistent=False)
        self._undo.append(lambda: module._buffers.pop(name, None))

    def undo(self) -> None:
        """Take every change off again, the last one first."""
        while self._undo:
            self._undo.pop()()


def patched(module: nn.Module, name: str) -> bool:
    """Whether ``module`` already has its own ``name`` (a rewrite was applied to it, or to what it was copied from)."""
    return name in module.__dict__


def _check_name(name: str) -> None:
    if not name.endswith(AT_EXPORT):
        raise ValueError(f"a rewrite's constant is named ...{AT_EXPORT}, not {name!r}")
