"""Alembic environment: the models' metadata, a connection from `digest db` or the app."""

from __future__ import annotations

from alembic import context

from digest.core import models  # noqa: F401  (registers every table on the metadata)
from digest.core.db import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    # Revisions stay plain SQLAlchemy: UTCDateTime is a DateTime(timezone=True) on disk.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    sqlite = connection.dialect.name == "sqlite"
    if sqlite and not connection.in_transaction():
        # Batch mode copies a table and drops the old one; with foreign keys on, that drop
        # deletes the rows of every table referencing it (ON DELETE CASCADE). SQLite changes
        # this setting only outside a transaction, hence the raw connection.
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            _migrate(connection, check_foreign_keys=True)
        finally:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
    else:
        _migrate(connection, check_foreign_keys=False)


def _migrate(connection, check_foreign_keys: bool) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()
        if check_foreign_keys:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migration would leave rows referring to missing ones: {broken[:5]}")


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from digest import create_app
    from digest.core.extensions import get_db

    with create_app().app_context():
        with get_db().engine.connect() as conn:
            _run(conn)
            conn.commit()
