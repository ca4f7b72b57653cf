"""signup requests: the web records a signup, the engine acts on it; consents carry the
changes a signup asked for until they are confirmed

Revision ID: b7e3c1a9d4f2
Revises: 3c1a7e2f9b41
Create Date: 2026-12-05 07:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = 'b7e3c1a9d4f2'
down_revision = '3c1a7e2f9b41'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('signup_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('newsletter_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('section_ids', sa.JSON(), nullable=False),
    sa.Column('source', sa.Enum('form', 'api', 'import', 'editor', name='consentsource', native_enum=False, length=16), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=512), nullable=True),
    sa.Column('consent_text', sa.Text(), nullable=False),
    sa.Column('consent_version', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['newsletter_id'], ['newsletter.id'], name=op.f('fk_signup_request_newsletter_id_newsletter'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_signup_request'))
    )
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.add_column(sa.Column('asked_name', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('asked_section_ids', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.drop_column('asked_section_ids')
        batch_op.drop_column('asked_name')
    op.drop_table('signup_request')
