"""document_map: unconfirmed_at and sent_name (a create whose answer the bridge has not seen)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 07:30:00.000000
"""
from alembic import op
import sqlalchemy as sa



revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('document_map', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unconfirmed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sent_name', sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('document_map', schema=None) as batch_op:
        batch_op.drop_column('sent_name')
        batch_op.drop_column('unconfirmed_at')
