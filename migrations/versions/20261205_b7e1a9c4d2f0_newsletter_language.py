"""newsletter language: what readers' pages and emails speak

Revision ID: b7e1a9c4d2f0
Revises: d4c7e2b9a310
Create Date: 2026-12-05 17:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = 'b7e1a9c4d2f0'
down_revision = 'd4c7e2b9a310'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('newsletter', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=16), server_default='en', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('newsletter', schema=None) as batch_op:
        batch_op.drop_column('language')
