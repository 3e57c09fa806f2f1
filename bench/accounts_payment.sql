-- pgbench: the accounts processor's payment transaction, statement for statement
-- (backends/accounts_sql.py): the epoch and replication check, the idempotency lookup, the
-- account read, the versioned update, the recorded answer. Run with -D accounts=N.
\set aid random(1, :accounts)
\set n random(1, 1000000000000)
BEGIN;
SELECT m.epoch, pg_is_in_recovery(),
    (SELECT count(*) FROM pg_stat_replication
      WHERE state = 'streaming' AND sync_state IN ('sync', 'quorum'))
    FROM gridfare_store_meta m;
SELECT outcome FROM account_operations WHERE key = 'pgb-' || :client_id || '-' || :n;
SELECT balance_fen, floor_fen, version FROM accounts WHERE account_id = :aid \gset
UPDATE accounts SET balance_fen = :balance_fen + 1, version = :version + 1
    WHERE account_id = :aid AND version = :version;
INSERT INTO account_operations (key, account_id, kind, amount_fen, outcome, balance_fen,
    version, epoch)
    VALUES ('pgb-' || :client_id || '-' || :n, :aid, 'payment', 1, 'applied',
            :balance_fen + 1, :version + 1, 1) ON CONFLICT DO NOTHING;
END;
