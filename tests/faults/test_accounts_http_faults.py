"""The primary killed under coalesced HTTP load, through the processors (HAProxy ingress,
one transaction in flight per replica, so concurrent payments share transactions): a
standby is promoted, no request fails, every acknowledged payment is present exactly once
and each balance is the sum of its acknowledged payments; the database itself shows that
payments were coalesced on both primaries (rows one transaction wrote share its xmin)."""

from __future__ import annotations

import pytest

from tests.accounts_helpers import wait_for
from tests.accounts_http import HttpPaymentLoad, haproxy_processors

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(300)]

ACCOUNTS = list(range(1, 13))  # one writer thread each: 12 requests in flight at once


@pytest.fixture(scope="module")
def service(ray_cluster):
    with haproxy_processors(retry_s=30.0) as (url, _, _, client):
        yield url, client


def test_primary_killed_under_coalesced_http_load_loses_and_doubles_nothing(service):
    import ray

    url, client = service
    for account in ACCOUNTS:
        client.open(account)
    primary = client.describe()["record"]["primary"]
    with HttpPaymentLoad(url, ACCOUNTS) as load:
        wait_for(lambda: load.count() > 300, what="HTTP load")
        replica = ray.get(client._coordinator.replica.remote(primary))
        ray.get(replica.kill_server.remote())
        before = load.count()
        wait_for(lambda: client.describe()["record"]["epoch"] == 2, what="promotion")
        wait_for(lambda: load.count() > before + 300, what="payments on the new primary")
    assert client.describe()["record"]["primary"] != primary
    assert load.failed == []
    for account in ACCOUNTS:
        keys = [r.key for r in client.operations(account)]
        assert len(keys) == len(set(keys)), f"account {account}: a payment doubled"
        assert sorted(keys) == sorted(load.acked[account]), f"account {account}"
        assert client.get(account).balance_fen == len(load.acked[account])
    # coalesced under each epoch: fewer transactions than payments, before and after
    db = client._db()
    with db.conn.transaction():
        rows = db.conn.execute(
            "SELECT epoch, count(*), count(DISTINCT xmin::text) FROM account_operations "
            "WHERE key LIKE 'http-%' GROUP BY epoch ORDER BY epoch").fetchall()
    assert [r[0] for r in rows] == [1, 2]
    for epoch, payments, transactions in rows:
        assert transactions < payments, f"epoch {epoch}: {payments} payments in " \
                                        f"{transactions} transactions"
