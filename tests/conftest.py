"""Shared fixtures. Ray starts once per session (it costs seconds), never per test."""

from __future__ import annotations

import os

# One machine: keep every Ray process on 127.0.0.1, and no token auth for local clusters.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
