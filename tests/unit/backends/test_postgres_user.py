"""The system user PostgreSQL runs as, created by replicas starting at once."""

from __future__ import annotations

import multiprocessing
import os
import pwd
import subprocess

import pytest

from backends.postgres import _system_user, _user_creation_lock

NAME = "gridfare_uatest"


def _uid(_: int) -> int:
    return _system_user(NAME).pw_uid


def _remove_user() -> None:
    # under the same lock: a userdel beside another user's useradd can drop either
    with _user_creation_lock():
        subprocess.run(["userdel", NAME], capture_output=True, check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root creates the user")
def test_replicas_creating_the_user_at_once_all_get_the_uid_that_stays():
    # Unserialised, three useradds at once all exited 0 and the last file written won: a
    # replica kept a uid that no longer existed (stop 28).
    _remove_user()
    try:
        with multiprocessing.get_context("fork").Pool(6) as pool:
            uids = pool.map(_uid, range(6))
        assert set(uids) == {pwd.getpwnam(NAME).pw_uid}
    finally:
        _remove_user()
