"""no-post readers: a newsletter skips readers whose sections get no post, or sends them a note

Revision ID: 7a0c5e9d3b21
Revises: e2a1c0de5e11
Create Date: 2026-12-05 10:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '7a0c5e9d3b21'
down_revision = 'e2a1c0de5e11'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('newsletter', schema=None) as batch_op:
        batch_op.add_column(sa.Column('no_post', sa.Enum('skip', 'note', name='nopostchoice', native_enum=False, create_constraint=False, length=16), server_default='skip', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('newsletter', schema=None) as batch_op:
        batch_op.drop_column('no_post')
