"""newsletter look: accent colours (light, dark), heading and body fonts, footer text

Revision ID: 7a11c0c0bead
Revises: 6d1a0e3b7c55
Create Date: 2026-12-05 10:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '7a11c0c0bead'
down_revision = '6d1a0e3b7c55'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('newsletter', schema=None) as batch_op:
        batch_op.add_column(sa.Column('accent_color', sa.String(length=7), nullable=False, server_default='#2c5cc5'))
        batch_op.add_column(sa.Column('accent_color_dark', sa.String(length=7), nullable=False, server_default='#93b2ff'))
        batch_op.add_column(sa.Column('heading_font', sa.String(length=32), nullable=False, server_default='georgia'))
        batch_op.add_column(sa.Column('body_font', sa.String(length=32), nullable=False, server_default='system'))
        batch_op.add_column(sa.Column('footer_text', sa.Text(), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('newsletter', schema=None) as batch_op:
        batch_op.drop_column('footer_text')
        batch_op.drop_column('body_font')
        batch_op.drop_column('heading_font')
        batch_op.drop_column('accent_color_dark')
        batch_op.drop_column('accent_color')
