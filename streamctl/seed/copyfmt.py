"""PostgreSQL text COPY formatting: rows -> large text chunks, the cheapest thing to send to COPY."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

Row = Sequence[object]
Formatter = Callable[[Row], str]

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def text_value(value: object) -> str:
    """One field in COPY's text format: NULL is \\N; backslash, tab and newlines are escaped."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


def escaped_line(row: Row) -> str:
    """Any row, every field escaped: the safe default."""
    return "\t".join(map(text_value, row)) + "\n"


def trusted_line(pattern: str) -> Formatter:
    """A %-pattern for rows whose fields can never need escaping (generated ids, numbers, timestamps).

    It is about five times cheaper per row than `escaped_line`, which matters for the largest table.
    """
    return pattern.__mod__


def chunks(batches: Iterable[Sequence[Row]], line: Formatter, target_bytes: int = 1 << 18
           ) -> Iterator[tuple[int, str]]:
    """Format whole batches and group them into (row count, text) chunks of about `target_bytes`."""
    parts: list[str] = []
    size = rows = 0
    for batch in batches:
        text = "".join(map(line, batch))
        parts.append(text)
        size += len(text)
        rows += len(batch)
        if size >= target_bytes:
            yield rows, "".join(parts)
            parts, size, rows = [], 0, 0
    if rows:
        yield rows, "".join(parts)


def batched(rows: Iterable[Row], size: int = 8192) -> Iterator[list[Row]]:
    """Rows in lists of `size`, for streams produced one row at a time."""
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
