"""sender liveness: a row per sending process with its heartbeat and obstacle; claims name it

Revision ID: e2a1c0de5e11
Revises: b7e3c1a9d4f2
Create Date: 2026-12-05 07:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = 'e2a1c0de5e11'
down_revision = 'b7e3c1a9d4f2'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sender',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('obstacle', sa.Text(), nullable=True),
    sa.Column('obstacle_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sender'))
    )
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sender_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_column('sender_id')
    op.drop_table('sender')
