"""Migrations: one head, and upgrading an empty database gives exactly the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from digest.core.db import Base, Database, alembic_config
from tests.support.apps import get_db_of


@pytest.mark.one_backend
def test_single_head(app) -> None:  # type: ignore[no-untyped-def]
    """Revisions form one line: no forgotten merge."""
    script = ScriptDirectory.from_config(alembic_config(get_db_of(app)))
    assert len(script.get_heads()) == 1


def test_upgraded_schema_equals_models(app) -> None:  # type: ignore[no-untyped-def]
    """The database the migrations build is the one the models describe."""
    database: Database = get_db_of(app)
    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
