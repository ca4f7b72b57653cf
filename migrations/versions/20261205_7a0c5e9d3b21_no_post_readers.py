"""the editor's week: a newsletter skips readers whose sections get no post (or sends them a
note); a published post's old slugs redirect to its new one

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
    op.create_table('post_address',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('newsletter_id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=200), nullable=False),
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['newsletter_id'], ['newsletter.id'], name=op.f('fk_post_address_newsletter_id_newsletter'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['post_id'], ['post.id'], name=op.f('fk_post_address_post_id_post'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_post_address')),
    sa.UniqueConstraint('newsletter_id', 'slug', name=op.f('uq_post_address_newsletter_id_slug'))
    )
    op.create_index(op.f('ix_post_address_post_id'), 'post_address', ['post_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_post_address_post_id'), table_name='post_address')
    op.drop_table('post_address')
    with op.batch_alter_table('newsletter', schema=None) as batch_op:
        batch_op.drop_column('no_post')
