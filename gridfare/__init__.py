"""gridfare: an elastic compute cluster for utility billing and railway ticketing, on Ray."""

from gridfare import errors as _errors
from gridfare.api import connect  # noqa: F401  (in __all__ below)
from gridfare.errors import *  # noqa: F403  (the error tree is the public namespace, as httpx's)

__all__ = sorted([*_errors.__all__, "connect"])
