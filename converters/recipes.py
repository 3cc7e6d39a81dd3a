"""What the format packages' recipe tables share: the measured choice per precision, and look-ups by name.

A format's ``quantize`` module keeps a table of recipes (``RECIPES``, by name) and the one each precision
uses (``CHOSEN``: a :class:`Choice` with the measurement behind it); these two functions read them with
the same errors everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from vitedge.errors import UsageError

Recipe = TypeVar("Recipe")


@dataclass(frozen=True)
class Choice:
    """The recipe a precision uses and the measurement that chose it."""

    recipe: str
    why: str


def chosen_recipe(recipes: Mapping[str, Recipe], chosen: Mapping[str, Choice], precision: str, title: str) -> Recipe:
    """The recipe ``chosen`` names for ``precision`` (a UsageError lists the precisions there are)."""
    try:
        return recipes[chosen[precision].recipe]
    except KeyError:
        raise UsageError(
            f"no {title} recipe for precision {precision!r}", hint=f"choose one of: {', '.join(chosen)}"
        ) from None


def named_recipe(recipes: Mapping[str, Recipe], name: str, title: str) -> Recipe:
    """A recipe by name (a UsageError lists the names there are)."""
    try:
        return recipes[name]
    except KeyError:
        raise UsageError(f"unknown {title} recipe {name!r}", hint=f"choose one of: {', '.join(recipes)}") from None
