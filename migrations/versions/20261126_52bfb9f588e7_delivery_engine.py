"""delivery engine: schedule runs, the shared send rate, ledger indexes for scale

Revision ID: 52bfb9f588e7
Revises: d02d07565001
Create Date: 2026-11-26 14:19:21.511925
"""

from alembic import op
import sqlalchemy as sa


revision = '52bfb9f588e7'
down_revision = 'd02d07565001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('send_rate',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('tokens', sa.Float(), nullable=False),
    sa.Column('stamp', sa.Float(), nullable=False),
    sa.Column('factor', sa.Float(), nullable=False),
    sa.Column('slowed_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_send_rate'))
    )
    op.create_table('schedule_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('newsletter_id', sa.Integer(), nullable=False),
    sa.Column('period_key', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.Enum('created', 'empty', name='scheduleoutcome', native_enum=False, length=16), nullable=False),
    sa.Column('issue_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('send_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['issue_id'], ['issue.id'], name=op.f('fk_schedule_run_issue_id_issue'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['newsletter_id'], ['newsletter.id'], name=op.f('fk_schedule_run_newsletter_id_newsletter'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule_run')),
    sa.UniqueConstraint('newsletter_id', 'period_key', name=op.f('uq_schedule_run_newsletter_id_period_key'))
    )
    # Claims read pending rows in id order from (issue_id, state, id); the reaper and
    # the retry queue get partial indexes that pending rows never enter.
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_claim')
        batch_op.drop_index('ix_delivery_state_lease_until')
        batch_op.create_index('ix_delivery_claim', ['issue_id', 'state', 'id'], unique=False)
        batch_op.create_index(
            'ix_delivery_lease', ['lease_until'], unique=False,
            postgresql_where=sa.text("state IN ('claimed', 'sending')"),
            sqlite_where=sa.text("state IN ('claimed', 'sending')"),
        )
        batch_op.create_index(
            'ix_delivery_retry', ['next_attempt_at'], unique=False,
            postgresql_where=sa.text("state = 'failed_temp'"),
            sqlite_where=sa.text("state = 'failed_temp'"),
        )


def downgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_retry')
        batch_op.drop_index('ix_delivery_lease')
        batch_op.drop_index('ix_delivery_claim')
        batch_op.create_index('ix_delivery_state_lease_until', ['state', 'lease_until'], unique=False)
        batch_op.create_index('ix_delivery_claim', ['issue_id', 'state', 'next_attempt_at', 'id'], unique=False)
    op.drop_table('schedule_run')
    op.drop_table('send_rate')
