"""jobs.wait_reason: why a queued job waits, apart from the pipeline stage it reached;
reservations.parts: the ledger names a reservation is for (how an early end is closed)

Revision ID: 0005_backfill_wait_reason
Revises: 0004_zoomwing
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_backfill_wait_reason"
down_revision = "0004_zoomwing"
branch_labels = None
depends_on = None

# Old rows kept the wait in `stage` ("waiting:budget", …, "released at shutdown", "interrupted").
_MOVED = {
    "waiting:budget": "budget",
    "waiting:source": "source",
    "waiting:worker": "worker",
    "interrupted": "interrupted",
    "released at shutdown": "shutdown",
}


def upgrade() -> None:
    op.add_column(
        "reservations",
        sa.Column("parts", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    )
    op.add_column("jobs", sa.Column("wait_reason", sa.String(length=32), nullable=True))
    jobs = sa.table("jobs", sa.column("stage", sa.String), sa.column("wait_reason", sa.String))
    for old, new in _MOVED.items():
        op.execute(jobs.update().where(jobs.c.stage == old).values(wait_reason=new, stage=None))
    # Notes that were never stages ("taken over", "revived", "released", "skipped by the admin").
    op.execute(
        jobs.update()
        .where(jobs.c.stage.not_in(("claimed", "captions", "fetching", "transcribing", "embedding", "indexing", "done")))
        .values(stage=None)
    )


def downgrade() -> None:
    jobs = sa.table("jobs", sa.column("stage", sa.String), sa.column("wait_reason", sa.String))
    for old, new in _MOVED.items():
        op.execute(jobs.update().where(jobs.c.wait_reason == new).values(stage=old))
    op.drop_column("jobs", "wait_reason")
    op.drop_column("reservations", "parts")
