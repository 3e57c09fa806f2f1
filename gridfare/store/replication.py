"""What a write does with the standbys it finds in sync: the RPO rule.

``refuse`` (the default, RPO 0): a write commits with ``synchronous_commit = remote_apply``
only while at least one standby is in sync; with none it is refused (``NotReplicated``)
before anything is written. ``accept``: with none in sync the write commits on the primary
alone and its answer says ``replicated: false`` (RPO > 0 while it lasts; the coordinator
must still name this primary as current, see ``backends.accounts_sql``).
"""

from __future__ import annotations

import enum

__all__ = ["CommitMode", "ReplicationRule", "commit_mode"]


class ReplicationRule(str, enum.Enum):
    REFUSE = "refuse"
    ACCEPT = "accept"


class CommitMode(str, enum.Enum):
    REMOTE_APPLY = "remote_apply"  # acknowledged once a standby has applied it
    LOCAL = "local"  # acknowledged once durable on the primary alone
    REFUSE = "refuse"  # not written at all


def commit_mode(standbys_in_sync: int, rule: ReplicationRule) -> CommitMode:
    if standbys_in_sync > 0:
        return CommitMode.REMOTE_APPLY
    return CommitMode.LOCAL if rule is ReplicationRule.ACCEPT else CommitMode.REFUSE
