"""The rules for every name a seats client chooses: ids that become paths, and free text.

One layer, used twice: at the edge (HTTP requests, the CLI's arguments, the client API) so a
bad value is refused before any call is made, and again in the core where a path is built
(``SeatsRoot``) or a record is logged (``TrainDate``, ``Inventory``), so no other way in
can skip it.

- ``centre_id`` and ``migration_id`` name directories and files: ASCII letters and digits,
  then also ``-`` and ``_`` (no dot, no slash, no NUL, no look-alike letters), bounded.
- ``request_id`` and station names are text stored in the logs, the snapshots (Arrow
  ``utf8``) and the answers (JSON): any printable Unicode, bounded, but no lone surrogate
  (it cannot be encoded as UTF-8: it broke a centre's checkpoints for good) and no control
  character.
- the seats root is an operator's path: no NUL, no ``..`` component (a root is named as
  it is meant, never by climbing), bounded, encodable.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from gridfare.errors import InvalidInput, InvalidName

__all__ = [
    "MAX_CENTRE_ID",
    "MAX_MIGRATION_ID",
    "MAX_ROOT",
    "MAX_TEXT",
    "check_centre_id",
    "check_migration_id",
    "check_root",
    "check_text",
]

MAX_CENTRE_ID = 32
MAX_MIGRATION_ID = 64
MAX_TEXT = 128  # a request_id or a station name
MAX_ROOT = 1024

_CENTRE_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_CENTRE_ID - 1}}}")
_MIGRATION_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_MIGRATION_ID - 1}}}")


def _shown(value: object) -> str:
    """``value`` for a one-line message: repr (escapes surrogates and controls), cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _id(value: object, what: str, pattern: re.Pattern[str], limit: int) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidName(
            f"{what} {_shown(value)}: must be 1..{limit} ASCII letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return value


def check_centre_id(value: object, what: str = "centre id") -> str:
    """A centre id (``centres/<id>/`` on disk, part of its actor's name)."""
    return _id(value, what, _CENTRE_ID, MAX_CENTRE_ID)


def check_migration_id(value: object, what: str = "migration id") -> str:
    """A migration id (``migrations/<id>.json`` on disk)."""
    return _id(value, what, _MIGRATION_ID, MAX_MIGRATION_ID)


def check_text(value: object, what: str, limit: int = MAX_TEXT) -> str:
    """Free text stored and answered: a non-empty str of at most ``limit`` characters,
    encodable as UTF-8, with no control character."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} {_shown(value)}: must be a string")
    if not 0 < len(value) <= limit:
        raise InvalidInput(f"{what} {_shown(value)}: must be 1..{limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"{what} {_shown(value)}: holds a lone surrogate (not encodable as UTF-8)"
        ) from None
    if not value.isprintable():  # also refuses format characters (Cf), e.g. U+200B
        raise InvalidInput(f"{what} {_shown(value)}: holds a control or format character")
    return value


def check_root(value: object, what: str = "seats root") -> Path:
    """A seats data root: the absolute path, refused if it holds NUL, a ``..`` component
    or a character a file name cannot encode, or is longer than ``MAX_ROOT``."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidName(f"{what} {_shown(value)}: must be a non-empty path")
    if len(value) > MAX_ROOT:
        raise InvalidName(f"{what} {_shown(value)}: longer than {MAX_ROOT} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # also bytes that are not UTF-8, as os.fsdecode gives them
        raise InvalidName(f"{what} {_shown(value)}: holds a lone surrogate") from None
    if "\x00" in value or not value.isprintable():
        raise InvalidName(f"{what} {_shown(value)}: holds NUL or a control character")
    path = Path(value)
    if ".." in path.parts:
        raise InvalidName(f"{what} {_shown(value)}: must not climb with '..'")
    if any(len(part.encode()) > 255 for part in path.parts):
        raise InvalidName(f"{what} {_shown(value)}: a component is longer than 255 bytes")
    return path.absolute()
