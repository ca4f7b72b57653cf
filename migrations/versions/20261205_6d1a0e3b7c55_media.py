"""Uploaded images (the media library), posts' lead images, the newsletter's logo and
how the digest shows lead images.

Revision ID: 6d1a0e3b7c55
Revises: c1c4e7a1b2d9
Create Date: 2026-12-05 10:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '6d1a0e3b7c55'
down_revision = 'c1c4e7a1b2d9'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('media',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uid', sa.String(length=32), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('alt', sa.Text(), nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('frames', sa.Integer(), nullable=False),
    sa.Column('variants', sa.JSON(), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['editor.id'], name=op.f('fk_media_uploaded_by_id_editor'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media')),
    sa.UniqueConstraint('uid', name=op.f('uq_media_uid'))
    )
    with op.batch_alter_table('newsletter', schema=None) as batch_op:
        batch_op.add_column(sa.Column('image_display', sa.String(length=16), nullable=False, server_default='none'))
        batch_op.add_column(sa.Column('logo_light_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('logo_dark_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_newsletter_logo_light_id_media'), 'media', ['logo_light_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_newsletter_logo_dark_id_media'), 'media', ['logo_dark_id'], ['id'], ondelete='SET NULL')
    with op.batch_alter_table('post', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lead_image_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_post_lead_image_id_media'), 'media', ['lead_image_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('post', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_post_lead_image_id_media'), type_='foreignkey')
        batch_op.drop_column('lead_image_id')
    with op.batch_alter_table('newsletter', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_newsletter_logo_dark_id_media'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_newsletter_logo_light_id_media'), type_='foreignkey')
        batch_op.drop_column('logo_dark_id')
        batch_op.drop_column('logo_light_id')
        batch_op.drop_column('image_display')
    op.drop_table('media')
