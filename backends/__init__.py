"""Servers gridfare starts or talks to (PostgreSQL, NATS): install paths, start, configure,
connect. The edge for them, as ``datasets`` is the edge for files: their errors become
``GridfareError``s here."""
