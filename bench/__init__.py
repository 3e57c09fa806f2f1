"""Benchmarks: each module's ``main()`` runs the real path next to its baseline in one run."""
