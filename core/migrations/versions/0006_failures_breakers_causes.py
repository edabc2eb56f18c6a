"""source_breakers: one circuit breaker per source (replaces app_settings 'source_pauses');
jobs.failure_cause: the typed kind of a job's last failure; item cost_usd = its ledger rows;
safety limits no longer stored (configuration only)

Revision ID: 0006_failures_breakers
Revises: 0005_backfill_wait_reason
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_failures_breakers"
down_revision = "0005_backfill_wait_reason"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_breakers",
        sa.Column("source_id", sa.Integer(), sa.ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("state", sa.String(length=16), server_default="closed", nullable=False),
        sa.Column("cause", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("hits", sa.Integer(), server_default="0", nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_probe_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("probe_job_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.add_column("jobs", sa.Column("failure_cause", sa.String(length=32), nullable=True))
    # The old per-source pauses were short rests after a 429: the breaker takes over from here.
    op.execute("DELETE FROM app_settings WHERE key = 'source_pauses'")
    # An item's cost is the sum of its ledger rows: the reaper's "run lost" estimates were never added.
    op.execute(
        "UPDATE media_items m SET cost_usd = coalesce((SELECT sum(l.usd) FROM ledger l WHERE l.media_item_id = m.id), 0) "
        "WHERE m.cost_usd IS DISTINCT FROM coalesce((SELECT sum(l.usd) FROM ledger l WHERE l.media_item_id = m.id), 0)"
    )
    # Stored safety limits are ignored from now on (configuration only): drop them so nothing suggests otherwise.
    op.execute("UPDATE app_settings SET value = value - 'daily_safety_usd' - 'monthly_safety_usd' WHERE key = 'budget'")


def downgrade() -> None:
    op.drop_column("jobs", "failure_cause")
    op.drop_table("source_breakers")
