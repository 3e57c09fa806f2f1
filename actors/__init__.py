"""Thin Ray shells around the pure core: they own state, call ``gridfare``, export metrics."""

NAMESPACE = "gridfare"
CONTROL_SERVER = "gridfare-control-server"
