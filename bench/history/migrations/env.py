"""Alembic's entry point for the results history.

xfbench runs the migrations itself (:func:`bench.history.db.open_history`), on a
connection it has opened and begun a transaction on, passed in as
``config.attributes["connection"]``: the check of the database's revision and the
upgrade happen in one transaction, under the database's lock. No logging is configured
here, so a migration prints nothing.

A developer's own ``alembic`` command (``script_location`` pointing here) names the
database with ``-x url=...``: ``alembic -x url=sqlite:///h.db downgrade 0001``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

config = context.config


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table=config.get_main_option("version_table") or "alembic_version",
    )
    with context.begin_transaction():
        context.run_migrations()


given = config.attributes.get("connection")
if given is not None:
    run(given)
else:
    from bench.history.db import create_history_engine

    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("name the database: alembic -x url=sqlite:///PATH upgrade head")
    engine = create_history_engine(url)
    try:
        with engine.begin() as conn:
            run(conn)
    finally:
        engine.dispose()
