"""console: api_requests (each connection's recent requests), key age and last use

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 18:00:00.000000
"""
from alembic import op
import sqlalchemy as sa



revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('api_key_set_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True))
    # A key stored before this migration is as old as its last rotation or its connection.
    op.execute('UPDATE connections SET api_key_set_at = COALESCE(key_checked_at, created_at)')
    op.create_table(
        'api_requests',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('connection_id', sa.String(length=40), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('minute', sa.Integer(), nullable=False),
        sa.Column('method', sa.String(length=10), nullable=False),
        sa.Column('route', sa.String(length=200), nullable=False),
        sa.Column('path', sa.String(length=300), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('api_requests', schema=None) as batch_op:
        batch_op.create_index('ix_api_requests_connection_minute', ['connection_id', 'minute'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_api_requests_at'), ['at'], unique=False)


def downgrade() -> None:
    op.drop_table('api_requests')
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.drop_column('last_used_at')
        batch_op.drop_column('api_key_set_at')
