"""Index for the editor's subscriber list: readers of a newsletter in id order.

Revision ID: d2f78d983c63
Revises: aa23d32d58e5
Create Date: 2026-11-26 14:34:56.080590
"""

from alembic import op

revision = "d2f78d983c63"
down_revision = "aa23d32d58e5"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_subscription_newsletter_id_id", "subscription", ["newsletter_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_subscription_newsletter_id_id", table_name="subscription")
