"""Remote prepaid fee control: six pure stages over Arrow batches, run from one registry.

``pipeline.STAGES``: pre-processing, data preparation, fee estimation (the tariff engine),
fee audit, benchmark comparison, strategy execution. I/O is passed in: the accounts service
through ``ports.AccountsPort``, the cache snapshot through ``cache.Snapshot``.
"""
