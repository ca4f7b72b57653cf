"""operations: the clock's heartbeat for /healthz and /metrics

Revision ID: 3c1d2e0f9a7b
Revises: 8096c9c2b49f
Create Date: 2026-12-05 07:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = '3c1d2e0f9a7b'
down_revision = '8096c9c2b49f'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('heartbeat',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('beat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('interval_seconds', sa.Float(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_heartbeat'))
    )


def downgrade() -> None:
    op.drop_table('heartbeat')
