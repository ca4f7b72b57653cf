"""editor actions: consent notes, who suppressed, CSV import jobs

Revision ID: 8096c9c2b49f
Revises: 52bfb9f588e7
Create Date: 2026-11-26 15:09:31.596416
"""

from alembic import op
import sqlalchemy as sa


revision = '8096c9c2b49f'
down_revision = '52bfb9f588e7'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('import_job',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('newsletter_id', sa.Integer(), nullable=False),
    sa.Column('editor_id', sa.Integer(), nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('source', sa.Enum('form', 'api', 'import', 'editor', name='consentsource', native_enum=False, length=16), nullable=False),
    sa.Column('state', sa.Enum('checking', 'checked', 'importing', 'done', 'failed', 'cancelled', name='importstate', native_enum=False, length=16), nullable=False),
    sa.Column('skip_invalid', sa.Boolean(), nullable=False),
    sa.Column('ask_to_confirm', sa.Boolean(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=True),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('checked_bytes', sa.Integer(), nullable=False),
    sa.Column('valid_rows', sa.Integer(), nullable=False),
    sa.Column('invalid_rows', sa.Integer(), nullable=False),
    sa.Column('problems', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('done_rows', sa.Integer(), nullable=False),
    sa.Column('last_line', sa.Integer(), nullable=False),
    sa.Column('imported', sa.Integer(), nullable=False),
    sa.Column('existing', sa.Integer(), nullable=False),
    sa.Column('suppressed', sa.Integer(), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['editor_id'], ['editor.id'], name=op.f('fk_import_job_editor_id_editor'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['newsletter_id'], ['newsletter.id'], name=op.f('fk_import_job_newsletter_id_newsletter'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_job'))
    )
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recorded_by', sa.String(length=320), nullable=True))
        # Existing consents get an empty note.
        batch_op.add_column(sa.Column('note', sa.Text(), nullable=False, server_default=''))

    with op.batch_alter_table('suppression', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recorded_by', sa.String(length=320), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('suppression', schema=None) as batch_op:
        batch_op.drop_column('recorded_by')

    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.drop_column('note')
        batch_op.drop_column('recorded_by')

    op.drop_table('import_job')
