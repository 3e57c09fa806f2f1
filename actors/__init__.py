"""Thin Ray shells around the pure core: they own state, call ``gridfare``, export metrics."""

from __future__ import annotations

NAMESPACE = "gridfare"


def named_detached(actor_class, name: str, **options):
    """``actor_class`` with the options every gridfare service actor shares: named in the
    gridfare namespace, detached (it outlives the job that created it), and found again,
    not duplicated, when it already exists. Call ``.remote(...)`` on the result."""
    return actor_class.options(name=name, namespace=NAMESPACE, get_if_exists=True,
                               lifetime="detached", **options)
