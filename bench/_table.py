"""Plain-text tables and ratio verdicts shared by the benchmark scripts (stdlib only, any interpreter)."""

from __future__ import annotations

import math
from collections.abc import Sequence

MISSING = "-"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, left_columns: int = 1) -> str:
    """Renders `rows` under `headers` as an aligned text table.

    Args:
        headers: Column titles.
        rows: Cells, already formatted as text; each row has one cell per header.
        left_columns: How many leading columns are left-aligned (labels); the rest are right-aligned (numbers).

    Returns:
        The table, lines joined by newlines, with a rule under the header.
    """
    widths = [len(header) for header in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[index]) if index < left_columns else cell.rjust(widths[index])
            for index, cell in enumerate(cells)
        ]
        return " | ".join(parts).rstrip()

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def ratio(theirs: float | None, ours: float | None) -> float | None:
    """`theirs / ours`, infinite when ours is at or below zero (no measurable cost), None if either is unknown."""
    if theirs is None or ours is None:
        return None
    if ours <= 0:
        return math.inf
    return theirs / ours


def format_ratio(value: float | None) -> str:
    if value is None:
        return MISSING
    if math.isinf(value):
        return "inf"
    return f"{value:.1f}x"


def verdict(value: float | None, target: float) -> str:
    """PASS when `value` (a ratio) reaches `target`, FAIL below it, n/a when there is nothing to compare."""
    if value is None:
        return "n/a"
    return "PASS" if value >= target else "FAIL"


def format_number(value: float | None, digits: int = 1) -> str:
    return MISSING if value is None else f"{value:,.{digits}f}"
