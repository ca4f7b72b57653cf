"""What came back about a delivery: a bounce or a complaint (digest/bounces.py).

Revision ID: 5ea8fa5e3a94
Revises: d2f78d983c63
Create Date: 2026-11-26 14:36:41.480433
"""

from alembic import op
import sqlalchemy as sa


revision = '5ea8fa5e3a94'
down_revision = 'd2f78d983c63'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bounce', sa.Enum('hard', 'soft', 'complaint', 'sender', name='bouncekind', native_enum=False, length=16), nullable=True))
        batch_op.add_column(sa.Column('bounce_detail', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('bounced_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_column('bounced_at')
        batch_op.drop_column('bounce_detail')
        batch_op.drop_column('bounce')
