"""durable_marks: small facts that outlive Redis (the rate limiter's Redis epoch)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 07:45:00.000000
"""
from alembic import op
import sqlalchemy as sa



revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'durable_marks',
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('value', sa.String(length=200), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('durable_marks')
