"""What ``--token-merging`` asks for, checked against a model: tokens merged and tokens left in each block.

Torch free. ``R`` (an int) merges ``R`` tokens in every block, as
ToMe does: a late block merges fewer where fewer than ``2 R`` unprotected tokens are left (at most half
of them can merge); ``R`` may not exceed the patch tokens divided by the blocks (ViT-B/16-224: 196 / 12,
so 16). A comma-separated list gives each block its own count, taken as it is. ``auto`` lets
``--max-accuracy-drop`` choose ``R`` (:mod:`vitedge.converters.token_merging.budget`). 0 is off.
"""

from __future__ import annotations

from dataclasses import dataclass

from vitedge.converters.token_merging_option import text_of
from vitedge.errors import UsageError

#: Leading tokens a family never merges: [CLS], and DeiT's distillation token.
PROTECTED_TOKENS = {"vit": 1, "deit": 2}
METHOD = ("ToMe (Bolya et al., ICLR 2023): bipartite soft matching on the attention keys between attention and "
          "MLP, size-weighted averages, proportional attention; protected tokens never merge")


@dataclass(frozen=True)
class TokenMergingPlan:
    """Tokens merged in each block, and the tokens that enter each block (static: they make the graph's shapes)."""

    schedule: tuple[int, ...]
    tokens: tuple[int, ...]
    protected: int
    r: int | None  # the constant R asked (or chosen), None for a schedule per block

    @property
    def final_tokens(self) -> int:
        return self.tokens[-1] - self.schedule[-1]

    @property
    def merges(self) -> bool:
        return any(self.schedule)


def max_r(tokens: int, blocks: int, protected: int) -> int:
    """The largest constant R: every patch token merged at most once over the blocks."""
    return (tokens - protected) // blocks


def plan_tokens(value: int | tuple[int, ...], *, tokens: int, blocks: int, protected: int,
                family: str = "this model") -> TokenMergingPlan:
    """The plan of ``value`` (R or a schedule) for a model of ``tokens`` tokens and ``blocks`` blocks.

    Raises:
        UsageError: R above :func:`max_r`, a schedule of the wrong length, or a block asked to merge
            more than half of its unprotected tokens.
    """
    if isinstance(value, tuple):
        if len(value) != blocks:
            raise UsageError(f"--token-merging {text_of(value)}: a schedule gives one r per block; {family} has "
                             f"{blocks} blocks, this gives {len(value)}", hint="or pass one R for every block")
        return TokenMergingPlan(value, _tokens_in(value, tokens, protected), protected, None)
    largest = max_r(tokens, blocks, protected)
    if value > largest:
        raise UsageError(
            f"--token-merging {value}: {family}'s {blocks} blocks would merge {value * blocks} tokens, "
            f"it has {tokens - protected} patch tokens",
            hint=f"the largest R for this model is {largest}",
        )
    schedule, left = [], tokens
    for _ in range(blocks):
        schedule.append(min(value, (left - protected) // 2))
        left -= schedule[-1]
    return TokenMergingPlan(tuple(schedule), _tokens_in(tuple(schedule), tokens, protected), protected, value)


def _tokens_in(schedule: tuple[int, ...], tokens: int, protected: int) -> tuple[int, ...]:
    """The tokens entering each block; a UsageError for a block asked to merge more than half of its own."""
    counts, left = [], tokens
    for index, r in enumerate(schedule):
        allowed = (left - protected) // 2
        if r > allowed:
            raise UsageError(
                f"--token-merging {text_of(schedule)}: block {index} has {left} tokens ({protected} protected), "
                f"at most {allowed} can merge, not {r}",
                hint="lower that block's r (at most half of a block's unprotected tokens merge)",
            )
        counts.append(left)
        left -= r
    return tuple(counts)
