"""The one table formatter: Markdown (``| a | b |``) or fixed-width text, from a header and rows of cells.

>>> print(format_table(["model", "ms"], [["demo", "3.1"]], align="lr"))
| model | ms |
|---|---:|
| demo | 3.1 |
>>> print(format_table(["", "AP"], [["pruned", "0.412"]], style="text", widths=[8, 7]))
             AP
pruned    0.412
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bpnet_core.errors import BpnetError


def format_table(
    header: Sequence,
    rows: Iterable[Sequence],
    *,
    style: str = "markdown",
    align: str | Sequence[str] | None = None,
    widths: Sequence[int] | None = None,
) -> str:
    """A table of ``header`` and ``rows`` (cells are ``str()``-ed; format numbers before).

    ``align``: one ``"l"`` or ``"r"`` per column (default: Markdown ``---`` separators; in text, the first column
    left and the others right). ``style="markdown"``: ``| a | b |`` lines, a ``|---|---:|`` separator (``---:`` for
    a right-aligned column), an empty cell as ``| |``. ``style="text"``: each cell padded to ``widths[i]`` characters
    (never cut), no separator line.
    """
    header = [str(h) for h in header]
    n = len(header)
    body = [[str(c) for c in row] for row in rows]
    if align is None:
        align = None if style == "markdown" else "l" + "r" * (n - 1)
    if align is not None and len(align) != n:
        raise BpnetError(f"format_table: {len(align)} alignments for {n} columns")
    if style == "markdown":

        def line(cells):
            return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"

        sep = "|" + "".join(("---:" if align is not None and a == "r" else "---") + "|" for a in (align or [""] * n))
        return "\n".join([line(header), sep, *(line(r) for r in body)])
    if style == "text":
        if widths is None or len(widths) != n:
            raise BpnetError(f"format_table: style='text' needs one width per column ({n})")

        def line(cells):
            return "".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align))

        return "\n".join([line(header), *(line(r) for r in body)])
    raise BpnetError(f"format_table: style must be 'markdown' or 'text' (got {style!r})")


def dict_table(rows: Sequence[dict], columns: Sequence[str] | None = None, **kwargs) -> str:
    """:func:`format_table` of a list of dicts: ``columns`` (default: the first row's keys) as the header, a missing
    key as an empty cell. ``""`` for no rows."""
    if not rows:
        return ""
    columns = list(columns or rows[0].keys())
    return format_table(columns, [[r.get(c, "") for c in columns] for r in rows], **kwargs)
