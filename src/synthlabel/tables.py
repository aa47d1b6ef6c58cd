"""Tiny formatting helpers for Markdown tables and percentages, shared by eval and report."""

from __future__ import annotations

from collections.abc import Sequence

MISSING = "—"


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """A fraction as a percentage without the sign (0.453 -> "45.3"); "—" for None."""
    return MISSING if x is None else f"{100.0 * float(x):.{digits}f}"


def fmt_mean_std(mean: float | None, std: float | None, scale: float = 100, digits: int = 1) -> str:
    """Mean and std scaled (default: fractions to percent) as "45.3 ± 1.2"; "—" when mean is None."""
    if mean is None:
        return MISSING
    text = f"{scale * float(mean):.{digits}f}"
    return text if std is None else f"{text} ± {scale * float(std):.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table with aligned pipes; the first column is left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[MISSING if c is None else str(c) for c in row] for row in rows]
    width = len(headers)
    for i, row in enumerate(cells[1:], start=1):
        if len(row) != width:
            raise ValueError(f"row {i} has {len(row)} cells, the header has {width}")
    widths = [max(3, *(len(row[j]) for row in cells)) for j in range(width)]

    def line(row: list[str]) -> str:
        padded = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * widths[0]] + ["-" * (w - 1) + ":" for w in widths[1:]]
    return "\n".join([line(cells[0]), "| " + " | ".join(rule) + " |"] + [line(r) for r in cells[1:]])
