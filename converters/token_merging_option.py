"""The ``--token-merging`` option: R, one R per block, or ``auto`` (torch free).

:class:`~vitedge.converters.export_types.ExportOptions` checks its value with :func:`parse_token_merging`
on construction, and the CLI passes the text through it; what a value means for a given model is
:mod:`vitedge.converters.token_merging.plan`'s business.
"""

from __future__ import annotations

from vitedge.errors import UsageError

AUTO = "auto"

TokenMerging = int | tuple[int, ...] | str


def parse_token_merging(text: str | int | tuple[int, ...] | list[int]) -> TokenMerging:
    """``"8"`` -> 8, ``"8,8,4"`` -> (8, 8, 4), ``"auto"`` -> "auto"; a UsageError for anything else."""
    if not isinstance(text, str):
        return check_value(tuple(text) if isinstance(text, list) else text)
    value = text.strip().lower()
    if value == AUTO:
        return AUTO
    parts = [part.strip() for part in value.split(",")]
    if not all(part.lstrip("-").isdigit() for part in parts):
        raise UsageError(f"--token-merging {text}: not a number of tokens",
                         hint="pass R (tokens merged per block, e.g. 8), one R per block (8,8,4,…) or auto")
    numbers = [int(part) for part in parts]
    return check_value(numbers[0] if len(numbers) == 1 else tuple(numbers))


def check_value(value: TokenMerging) -> TokenMerging:
    """Refuse a negative count or a value of the wrong type (what ExportOptions checks on construction)."""
    if value == AUTO:
        return value
    counts = value if isinstance(value, tuple) else (value,)
    if isinstance(value, bool) or not counts or not all(isinstance(r, int) and not isinstance(r, bool) for r in counts):
        raise UsageError(f"token merging {value!r}: expected R (an int), a tuple of ints per block, or 'auto'")
    if any(r < 0 for r in counts):
        raise UsageError(f"--token-merging {text_of(value)}: r counts tokens, it cannot be negative",
                         hint="pass 0 (off) or more")
    return value


def text_of(value: TokenMerging) -> str:
    """The option as a user writes it."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def is_off(value: TokenMerging) -> bool:
    """Whether ``value`` merges nothing: the unmerged graph, exactly."""
    return value == 0 or (isinstance(value, tuple) and not any(value))
