"""Thin Ray shells around the pure core: they own state, call ``gridfare``, export metrics."""

from __future__ import annotations

NAMESPACE = "gridfare"


def named_detached(actor_class, name: str, **options):
    """``actor_class`` with the options every gridfare service actor shares: named in the
    gridfare namespace, detached (it outlives the job that created it), and found again,
    not duplicated, when it already exists. Call ``.remote(...)`` on the result."""
    return actor_class.options(name=name, namespace=NAMESPACE, get_if_exists=True,
                               lifetime="detached", **options)


def one_line(exc: BaseException) -> str:
    """A failed Ray call in one line for a log or a record: the remote error's type and the
    last line of its message (a RayTaskError's ``cause`` rather than its whole traceback)."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"[:500]
