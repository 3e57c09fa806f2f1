"""The error tree drawn in gridfare/errors.py is the real one: every public class is drawn
once, under its real parent (several branches add errors, and a merge can garble a drawing)."""

from __future__ import annotations

import re

import gridfare.errors as errors


def _drawn() -> dict[str, str]:
    """class name -> the parent the drawing puts it under."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    lines = errors.__doc__.splitlines()
    root = next(i for i, line in enumerate(lines) if line.strip().startswith("GridfareError"))
    tree = lines[root:]
    for line in tree:
        if not line.strip():
            break
        match = re.match(r"^[\s│├└─]*?([A-Z]\w+)\s", line)
        if not match:
            continue
        column = match.start(1)
        while stack and stack[-1][0] >= column:
            stack.pop()
        if stack:
            parents[match.group(1)] = stack[-1][1]
        stack.append((column, match.group(1)))
    return parents


def test_every_public_error_is_drawn_under_its_parent():
    drawn = _drawn()
    public = set(errors.__all__) - {"GridfareError"}
    assert set(drawn) == public
    for name, parent in drawn.items():
        assert getattr(errors, name).__bases__[0].__name__ == parent, name


def test_all_is_sorted():
    assert errors.__all__ == sorted(errors.__all__)
