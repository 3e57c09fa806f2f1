"""One table maps error classes to exit codes; docs/errors.md names every error kind."""

from __future__ import annotations

import re
from pathlib import Path

import gridfare.errors as errors
from gridfare.exit_codes import EXIT_CODES, error_line, exit_code

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def test_every_error_has_a_code_from_the_table():
    for name in errors.__all__:
        cls = getattr(errors, name)
        exc = cls.__new__(cls)  # some take fields; the class is what counts
        assert exit_code(exc) in EXIT_CODES.values()
        nearest = next(c for c in cls.__mro__ if c in EXIT_CODES)
        assert exit_code(exc) == EXIT_CODES[nearest]


def test_codes_are_distinct_and_leave_room_for_runs_and_signals():
    codes = list(EXIT_CODES.values())
    assert len(set(codes)) == len(codes)
    assert 0 not in codes and 1 not in codes  # 1: a run ended with failed sections
    assert all(code < 126 for code in codes)  # above: the shell's and the signals'


def test_an_error_is_one_line():
    assert error_line(errors.InvalidInput("a\nb  c")) == "gridfare: error: a b c"
    assert error_line(errors.InvalidInput(""), "job") == "job: error: InvalidInput"


def test_the_doc_names_every_error_and_every_code():
    text = DOC.read_text()
    for name in errors.__all__:
        assert re.search(rf"\b{name}\b", text), f"docs/errors.md has no entry for {name}"
    for code in EXIT_CODES.values():
        assert f"\n| {code} |" in text, f"docs/errors.md does not list exit code {code}"


def test_a_remote_error_is_its_cause():
    class Remote(errors.UnknownRun):  # what Ray raises: the cause's class, a traceback text
        def __init__(self, cause):
            super().__init__("Traceback (most recent call last):\n  ...\n" + str(cause))
            self.cause = cause

    remote = Remote(errors.UnknownRun("run 'x' is not in the catalog"))
    assert error_line(remote) == "gridfare: error: run 'x' is not in the catalog"
    assert exit_code(remote) == EXIT_CODES[errors.DataCentreError]
