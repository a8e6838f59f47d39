"""watches per trigger: event_type joins (connection, agent) in the watch's key

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 17:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('watches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event_type', sa.String(length=60),
                                      server_default='new_conversation', nullable=False))
        batch_op.drop_constraint('uq_watch', type_='unique')
        batch_op.create_unique_constraint('uq_watch_event', ['connection_id', 'event_type',
                                                              'agent_id'])


def downgrade() -> None:
    with op.batch_alter_table('watches', schema=None) as batch_op:
        batch_op.drop_constraint('uq_watch_event', type_='unique')
        batch_op.create_unique_constraint('uq_watch', ['connection_id', 'agent_id'])
        batch_op.drop_column('event_type')
