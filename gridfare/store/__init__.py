"""The accounts store's pure rules: operations on a prepaid balance, the replication rule,
and the coordinator's promote decision (a function of a snapshot). No I/O here: the SQL is
in ``backends.accounts_sql``, the servers in ``backends.postgres``, the Ray shells in
``actors``."""
