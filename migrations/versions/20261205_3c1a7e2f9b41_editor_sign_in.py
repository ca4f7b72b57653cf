"""editor sign-in: session ids that can be ended, two-factor sign-in

Revision ID: 3c1a7e2f9b41
Revises: 3c1f0a9e5b7d
Create Date: 2026-12-05 07:10:00
"""

import secrets

from alembic import op
import sqlalchemy as sa


revision = '3c1a7e2f9b41'
down_revision = '3c1f0a9e5b7d'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('editor', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_token', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('totp_secret', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('totp_enabled_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=True))
    # Each editor gets a random session id of their own; sessions from before log in again.
    editor = sa.table('editor', sa.column('id', sa.Integer), sa.column('session_token', sa.String))
    connection = op.get_bind()
    for (editor_id,) in connection.execute(sa.select(editor.c.id)).all():
        connection.execute(editor.update().where(editor.c.id == editor_id)
                           .values(session_token=secrets.token_urlsafe(16)))
    with op.batch_alter_table('editor', schema=None) as batch_op:
        batch_op.alter_column('session_token', existing_type=sa.String(length=32), nullable=False)

    op.create_table('recovery_code',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('editor_id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['editor_id'], ['editor.id'], name=op.f('fk_recovery_code_editor_id_editor'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_code')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_recovery_code_code_hash'))
    )
    op.create_index(op.f('ix_recovery_code_editor_id'), 'recovery_code', ['editor_id'], unique=False)
    op.create_table('workspace',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('require_two_factor', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workspace'))
    )


def downgrade() -> None:
    op.drop_table('workspace')
    op.drop_index(op.f('ix_recovery_code_editor_id'), table_name='recovery_code')
    op.drop_table('recovery_code')
    with op.batch_alter_table('editor', schema=None) as batch_op:
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_enabled_at')
        batch_op.drop_column('totp_secret')
        batch_op.drop_column('session_token')
