"""Byte edits of a seed file, for property tests of the JPEG parsers."""

from __future__ import annotations

from hypothesis import strategies as st


def byte_edits(size: int, most: int = 8) -> st.SearchStrategy[list[tuple[int, int]]]:
    """One to ``most`` ``(offset, new byte)`` edits of a ``size``-byte file."""
    return st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, 255)), min_size=1, max_size=most)


def edited(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    """``data`` with every edit applied in order."""
    buffer = bytearray(data)
    for at, value in edits:
        buffer[at] = value
    return bytes(buffer)
