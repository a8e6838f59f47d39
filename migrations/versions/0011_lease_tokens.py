"""watches, deliveries: lease_token (short leases a live task renews, compared by token)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 23:55:00.000000
"""
from alembic import op
import sqlalchemy as sa



revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('watches', 'deliveries'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('lease_token', sa.String(length=16), nullable=True))


def downgrade() -> None:
    for table in ('deliveries', 'watches'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('lease_token')
