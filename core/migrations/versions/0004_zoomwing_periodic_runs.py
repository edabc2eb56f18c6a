"""periodic_runs: which process ran each firing of a shared scheduler job

Revision ID: 0004_zoomwing
Revises: 0003_moments
Create Date: 2026-12-01 08:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_zoomwing"
down_revision = "0003_moments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "periodic_runs",
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_by", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("job"),
    )
    # The schedulers' old shared APScheduler job store: each process now keeps its own in memory.
    op.execute("DROP TABLE IF EXISTS apscheduler_jobs")


def downgrade() -> None:
    op.drop_table("periodic_runs")
