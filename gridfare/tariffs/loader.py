"""Tariff files (TOML) -> validated Tariffs. Every error names the file and the key.

A tariff file: ``code`` (must equal the file stem), ``name``, ``customer_kind``, optional
``description``, and ``[[components]]`` tables, each with a ``kind`` from ``KINDS`` and that
kind's keys. Numbers may be TOML numbers or strings; both are read as exact decimals.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from importlib.resources import files
from pathlib import Path

from datasets.schemas import CUSTOMER_KINDS
from gridfare.errors import TariffError
from gridfare.tariffs import basic, fixed, funds, power_factor, tiered, tou
from gridfare.tariffs.book import TARIFF_CODE, TariffBook
from gridfare.tariffs.component import Component
from gridfare.tariffs.params import Table
from gridfare.tariffs.tariff import Tariff

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable

    import tomllib
else:  # pragma: no cover - Python 3.10
    from importlib.abc import Traversable

    import tomli as tomllib

__all__ = ["KINDS", "TariffFiles", "load_tariff", "load_tariff_book", "parse_tariff",
           "read_tariff_files"]

KINDS: dict[str, Callable[[Table], Component]] = {
    "tiered": tiered.parse,
    "tou": tou.parse,
    "basic": basic.parse,
    "power_factor": power_factor.parse,
    "funds": funds.parse,
    "fixed": fixed.parse_fixed,
    "minimum": fixed.parse_minimum,
}

_CODE = TARIFF_CODE
_SUFFIX = ".toml"
_MAX_BYTES = 1 << 20  # a tariff file is a few hundred bytes


def default_directory() -> Traversable:
    """The sample tariffs shipped in the ``datasets`` package."""
    return files("datasets") / "samples" / "tariffs"


def parse_tariff(text: str | bytes, filename: str) -> Tariff:
    """Parse and validate the text of one tariff file named ``filename`` (``<code>.toml``)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TariffError(f"{filename}: not UTF-8 text: {exc}") from exc
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise TariffError(f"{filename}: not valid TOML: {exc}") from exc
    top = Table(data, file=filename)
    code = top.string("code")
    stem = filename[: -len(_SUFFIX)] if filename.endswith(_SUFFIX) else filename
    if not _CODE.fullmatch(code):
        raise top.error("code", f"{code!r} is not lowercase words joined by hyphens")
    if code != stem:
        raise top.error("code", f"{code!r} does not match the file name {filename!r}")
    name = top.string("name")
    kind = top.string("customer_kind", CUSTOMER_KINDS)
    description = top.string("description") if top.has("description") else ""
    components = [_component(table) for table in top.tables("components")]
    if not components:
        raise top.error("components", "a tariff needs at least one component")
    _check_unique_kinds(top, components)
    top.finish()
    return Tariff(
        code=code,
        name=name,
        customer_kind=kind,
        components=tuple(components),
        description=description,
    )


def load_tariff(path: str | os.PathLike[str] | Traversable) -> Tariff:
    """Load and validate one tariff file."""
    source = Path(path) if isinstance(path, (str, os.PathLike)) else path
    try:
        if isinstance(source, Path) and source.stat().st_size > _MAX_BYTES:
            raise TariffError(f"{path}: larger than {_MAX_BYTES:,} bytes: not a tariff file")
        text = source.read_bytes()
    except OSError as exc:
        raise TariffError(f"{path}: cannot read tariff file: {exc}") from exc
    return parse_tariff(text, source.name)


def load_tariff_book(directory: str | os.PathLike[str] | Traversable | None = None) -> TariffBook:
    """Load every ``*.toml`` in ``directory`` (default: the packaged sample tariffs).

    Each must be a regular file named ``<code>.toml`` inside the directory: a link is
    followed only where it stays inside (as a Kubernetes ConfigMap's ``..data`` links do),
    and a name that is not a code could not be one.
    """
    return read_tariff_files(directory).book()


@dataclass(frozen=True)
class TariffFiles:
    """The text of a tariff book's files, as read once: what travels with a billing run.

    A run carries these (not a directory name) to every process that bills it and to the
    catalog, so each section of a run, a resume or a restarted ControlServer prices with
    the very book the run was started with; ``digest`` names that book.
    """

    files: tuple[tuple[str, str], ...]  # (file name, UTF-8 text), sorted by name
    origin: str = ""  # where they were read from, for messages only

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the files' names and texts (not of ``origin``)."""
        return "sha256:" + hashlib.sha256(self.to_json().encode()).hexdigest()

    def to_json(self) -> str:
        """The files as one canonical JSON object ``{name: text}`` (the catalog's copy)."""
        return json.dumps(dict(self.files), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, origin: str = "") -> TariffFiles:
        files = json.loads(text)
        return cls(tuple(sorted(files.items())), origin)

    def book(self) -> TariffBook:
        """Parse and validate every file: the TariffBook, or a TariffError naming the file."""
        if not self.files:
            raise TariffError(f"{self.origin or 'tariff book'}: no tariff files (*.toml)")
        return TariffBook(parse_tariff(text, name) for name, text in self.files)


def read_tariff_files(directory: str | os.PathLike[str] | Traversable | None = None
                      ) -> TariffFiles:
    """The ``*.toml`` files of ``directory`` (default: the packaged sample tariffs), read but
    not yet parsed (``.book()`` parses them); the rules of ``load_tariff_book``."""
    folder = default_directory() if directory is None else directory
    folder = Path(folder) if isinstance(folder, (str, os.PathLike)) else folder
    try:
        # Inside the try: a path the OS refuses to look up (too long, say) raises here.
        if isinstance(folder, Path) and not folder.is_dir():
            raise TariffError(f"{folder}: cannot list tariff directory: no such directory")
        entries = sorted(
            (e for e in folder.iterdir() if e.name.endswith(_SUFFIX)), key=lambda e: e.name
        )
    except OSError as exc:
        raise TariffError(f"{folder}: cannot list tariff directory: {exc.strerror or exc}"
                          ) from exc
    if not entries:
        raise TariffError(f"{folder}: no tariff files (*.toml)")
    files = []
    for entry in entries:
        if not _CODE.fullmatch(entry.name[: -len(_SUFFIX)]):
            raise TariffError(f"{folder}: {entry.name!r} is not named <code>.toml (a code is "
                              "lowercase words joined by hyphens)")
        if isinstance(entry, Path):
            real, inside = entry.resolve(), folder.resolve()
            if inside not in real.parents or not real.is_file():
                raise TariffError(f"{folder}: {entry.name} is not a regular file inside the "
                                  "directory (a link out of it, or a directory)")
        try:
            data = entry.read_bytes()
        except OSError as exc:
            raise TariffError(f"{entry}: cannot read tariff file: {exc}") from exc
        try:
            files.append((entry.name, data.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise TariffError(f"{entry.name}: not UTF-8 text: {exc}") from exc
    return TariffFiles(tuple(files), str(folder))


def _component(table: Table) -> Component:
    kind = table.string("kind")
    if kind not in KINDS:
        raise table.error("kind", f"unknown component kind {kind!r}; known: {', '.join(KINDS)}")
    return KINDS[kind](table)


def _check_unique_kinds(top: Table, components: list[Component]) -> None:
    seen: set[str] = set()
    for i, component in enumerate(components):
        if component.kind in seen:
            raise top.error(f"components[{i}].kind", f"a second {component.kind!r} component")
        seen.add(component.kind)
