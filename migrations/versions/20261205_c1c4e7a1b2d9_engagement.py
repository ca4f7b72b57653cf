"""engagement: click and open tracking per newsletter, a reader's opt-out, issue links and tallies

Revision ID: c1c4e7a1b2d9
Revises: f33d5a1c0b7e
Create Date: 2026-12-05 10:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = 'c1c4e7a1b2d9'
down_revision = 'f33d5a1c0b7e'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('newsletter', schema=None) as batch_op:
        batch_op.add_column(sa.Column('track_clicks', sa.Boolean(), server_default=sa.text('true'), nullable=False))
        batch_op.add_column(sa.Column('track_opens', sa.Boolean(), server_default=sa.text('false'), nullable=False))
        batch_op.add_column(sa.Column('keep_reader_engagement', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.add_column(sa.Column('no_tracking', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.create_table('issue_link',
    sa.Column('issue_id', sa.Integer(), nullable=False),
    sa.Column('idx', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('post_id', sa.Integer(), nullable=True),
    sa.Column('section_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['issue_id'], ['issue.id'], name=op.f('fk_issue_link_issue_id_issue'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['post_id'], ['post.id'], name=op.f('fk_issue_link_post_id_post'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['section_id'], ['section.id'], name=op.f('fk_issue_link_section_id_section'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('issue_id', 'idx', name=op.f('pk_issue_link'))
    )
    op.create_table('click_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issue_id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('link', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('machine', sa.String(length=16), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_click_event'))
    )
    with op.batch_alter_table('click_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_click_event_delivery_id'), ['delivery_id'], unique=False)
    op.create_table('click_tally',
    sa.Column('issue_id', sa.Integer(), nullable=False),
    sa.Column('link', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('hour', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('clicks', sa.Integer(), nullable=False),
    sa.Column('uniques', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['issue_id'], ['issue.id'], name=op.f('fk_click_tally_issue_id_issue'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('issue_id', 'link', 'hour', 'kind', name=op.f('pk_click_tally'))
    )
    op.create_table('click_reach',
    sa.Column('issue_id', sa.Integer(), nullable=False),
    sa.Column('section_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('readers', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['issue_id'], ['issue.id'], name=op.f('fk_click_reach_issue_id_issue'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('issue_id', 'section_id', name=op.f('pk_click_reach'))
    )
    op.create_table('click_seen',
    sa.Column('issue_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['issue_id'], ['issue.id'], name=op.f('fk_click_seen_issue_id_issue'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('issue_id', 'key', name=op.f('pk_click_seen'))
    )
    op.create_table('reader_click',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('link', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('machine', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['delivery_id'], ['delivery.id'], name=op.f('fk_reader_click_delivery_id_delivery'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reader_click'))
    )
    with op.batch_alter_table('reader_click', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reader_click_delivery_id'), ['delivery_id'], unique=False)


def downgrade() -> None:
    op.drop_table('reader_click')
    op.drop_table('click_seen')
    op.drop_table('click_reach')
    op.drop_table('click_tally')
    op.drop_table('click_event')
    op.drop_table('issue_link')
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.drop_column('no_tracking')
    with op.batch_alter_table('newsletter', schema=None) as batch_op:
        batch_op.drop_column('keep_reader_engagement')
        batch_op.drop_column('track_opens')
        batch_op.drop_column('track_clicks')
