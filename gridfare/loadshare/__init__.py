"""Load sharing onto capped burst environments (source design E), pure: the trigger and exit
policy (``policy``), the open-state table (``table``), contribution credit (``credit``) and
the caps an environment enforces itself (``caps``). The ``LoadShareManager`` actor gathers
and applies; this package decides."""

from gridfare.loadshare.caps import EnvironmentCaps, TokenBucket, WorkdirQuota
from gridfare.loadshare.credit import CreditWeights, LedgerEntry, accrue, credits_by
from gridfare.loadshare.policy import (
    Action,
    Cause,
    Command,
    LoadSnapshot,
    Phase,
    ShareMemory,
    SharePlan,
    SharePolicy,
    Signal,
    decide,
)
from gridfare.loadshare.table import Environment, EnvState, OpenTable

__all__ = [
    "Action",
    "Cause",
    "Command",
    "CreditWeights",
    "EnvState",
    "Environment",
    "EnvironmentCaps",
    "LedgerEntry",
    "LoadSnapshot",
    "OpenTable",
    "Phase",
    "ShareMemory",
    "SharePlan",
    "SharePolicy",
    "Signal",
    "TokenBucket",
    "WorkdirQuota",
    "accrue",
    "credits_by",
    "decide",
]
