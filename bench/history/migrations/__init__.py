"""The results history's Alembic migrations (run by :func:`bench.history.db.open_history`;
a package so that setuptools ships them)."""
