"""retention indexes: unkeyed inbound_events by received_at, jobs.finished_at (housekeeping's purge)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 15:40:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.create_index('ix_inbound_events_unkeyed_received_at', ['received_at'], unique=False,
                              sqlite_where=sa.text('delivery_key IS NULL'),
                              postgresql_where=sa.text('delivery_key IS NULL'))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_finished_at'), ['finished_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_finished_at'))
    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_events_unkeyed_received_at')
