"""transactional mail queue (confirmation, welcome) and who confirmed each consent

Revision ID: d02d07565001
Revises: 5ea8fa5e3a94
Create Date: 2026-11-26 14:18:00.179308
"""

from alembic import op
import sqlalchemy as sa


revision = 'd02d07565001'
down_revision = '5ea8fa5e3a94'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('transactional_mail',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('confirm', 'welcome', 'already', name='transactionalkind', native_enum=False, length=16), nullable=False),
    sa.Column('state', sa.Enum('pending', 'sent', 'skipped', 'failed', name='transactionalstate', native_enum=False, length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('smtp_code', sa.Integer(), nullable=True),
    sa.Column('queue_id', sa.String(length=200), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscription.id'], name=op.f('fk_transactional_mail_subscription_id_subscription'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transactional_mail'))
    )
    with op.batch_alter_table('transactional_mail', schema=None) as batch_op:
        batch_op.create_index('ix_transactional_mail_due', ['state', 'due_at'], unique=False)
        batch_op.create_index('ix_transactional_mail_subscription_kind', ['subscription_id', 'kind', 'created_at'], unique=False)

    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.add_column(sa.Column('confirmed_ip', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('confirmed_user_agent', sa.String(length=512), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.drop_column('confirmed_user_agent')
        batch_op.drop_column('confirmed_ip')

    with op.batch_alter_table('transactional_mail', schema=None) as batch_op:
        batch_op.drop_index('ix_transactional_mail_subscription_kind')
        batch_op.drop_index('ix_transactional_mail_due')

    op.drop_table('transactional_mail')
