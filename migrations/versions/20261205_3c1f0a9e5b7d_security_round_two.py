"""security round two: a random, never reused reference for each transactional email

Revision ID: 3c1f0a9e5b7d
Revises: 3c1d2e0f9a7b
Create Date: 2026-12-05 07:30:00
"""

import secrets

from alembic import op
import sqlalchemy as sa


revision = '3c1f0a9e5b7d'
down_revision = '3c1d2e0f9a7b'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('transactional_mail', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ref', sa.String(length=32), nullable=True))
    mail = sa.table('transactional_mail', sa.column('id', sa.Integer), sa.column('ref', sa.String))
    connection = op.get_bind()
    for (mail_id,) in connection.execute(sa.select(mail.c.id)).all():
        connection.execute(
            mail.update().where(mail.c.id == mail_id).values(ref=secrets.token_hex(10))
        )
    with op.batch_alter_table('transactional_mail', schema=None) as batch_op:
        batch_op.alter_column('ref', existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_transactional_mail_ref'), ['ref'])


def downgrade() -> None:
    with op.batch_alter_table('transactional_mail', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_transactional_mail_ref'), type_='unique')
        batch_op.drop_column('ref')
