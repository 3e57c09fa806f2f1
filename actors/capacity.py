"""Capacity asked of the autoscaler, by several owners at once.

``ray.autoscaler.sdk.request_resources`` keeps ONE request for the whole cluster: each call
replaces the previous one, whoever made it. The ControlServer (billing sections) and the
LoadShareManager (burst environments) both ask, so each writes its own bundles to the GCS
key-value store under its owner name and then asks for the union of every owner's bundles:
one owner withdrawing its request leaves the others' in place.
"""

from __future__ import annotations

import json

__all__ = ["request_capacity", "requested_capacity"]

_NAMESPACE = "gridfare-capacity"


def request_capacity(owner: str, bundles: list[dict]) -> list[dict]:
    """Set ``owner``'s bundles (``[]`` withdraws them); returns the union now asked for."""
    from ray.autoscaler.sdk import request_resources
    from ray.experimental import internal_kv

    key = owner.encode()
    if bundles:
        internal_kv._internal_kv_put(key, json.dumps(bundles).encode(), overwrite=True,
                                     namespace=_NAMESPACE)
    else:
        internal_kv._internal_kv_del(key, namespace=_NAMESPACE)
    union = requested_capacity()
    request_resources(bundles=union)
    return union


def requested_capacity() -> list[dict]:
    """Every owner's bundles, owners in name order."""
    from ray.experimental import internal_kv

    union: list[dict] = []
    for key in sorted(internal_kv._internal_kv_list(b"", namespace=_NAMESPACE)):
        raw = internal_kv._internal_kv_get(key, namespace=_NAMESPACE)
        if raw:
            union.extend(json.loads(raw))
    return union
