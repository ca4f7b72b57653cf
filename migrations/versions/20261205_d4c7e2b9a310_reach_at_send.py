"""click reach: readers whose message had each section, recorded when the issue finished sending

Revision ID: d4c7e2b9a310
Revises: 7a11c0c0bead
Create Date: 2026-12-05 14:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = 'd4c7e2b9a310'
down_revision = '7a11c0c0bead'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('click_reach', schema=None) as batch_op:
        batch_op.add_column(sa.Column('readers_got', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('click_reach', schema=None) as batch_op:
        batch_op.drop_column('readers_got')
