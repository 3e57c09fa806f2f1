-- pgbench: the accounts processor's payment, statement for statement and round trip for
-- round trip (backends/accounts_sql.py, AccountsDB.apply): one read of the epoch, the
-- standbys in sync, the key's first answer and the account; one write statement (its own
-- transaction) moving the balance under the version and epoch check and recording the
-- answer. Run with -M prepared (psycopg prepares a statement from its fifth use) and
-- -D accounts=N.
\set aid random(1, :accounts)
\set n random(1, 1000000000000)
SELECT m.epoch AS epoch, pg_is_in_recovery() AS recovery,
    (SELECT count(*) FROM pg_stat_get_wal_senders() w
      WHERE w.state = 'streaming' AND w.sync_state IN ('sync', 'quorum')) AS in_sync,
    coalesce(f.outcome, '-') AS first_answer,
    a.balance_fen AS balance_fen, a.floor_fen AS floor_fen, a.version AS version
    FROM gridfare_store_meta m
    LEFT JOIN account_operations f ON f.key = 'pgb-' || :client_id || '-' || :n
    LEFT JOIN accounts a ON a.account_id = :aid \gset
WITH moved AS (UPDATE accounts SET balance_fen = :balance_fen + 1, version = :version + 1
      WHERE account_id = :aid AND version = :version
        AND (SELECT epoch FROM gridfare_store_meta) = :epoch RETURNING account_id)
    INSERT INTO account_operations (key, account_id, kind, amount_fen, outcome, balance_fen,
        version, epoch) SELECT 'pgb-' || :client_id || '-' || :n, account_id, 'payment', 1,
        'applied', :balance_fen + 1, :version + 1, :epoch FROM moved;
