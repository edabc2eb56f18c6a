"""transcript segments by time: the sentence locator reads a hit window's segments

Revision ID: 0003_moments
Revises: 0002_query_titles_verdict
Create Date: 2026-12-01 08:00:00
"""
from alembic import op

revision = "0003_moments"
down_revision = "0002_query_titles_verdict"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Search reads the segments of ≤ 30 windows per query by (item, start second); without this
    # index each window scans every segment of its item (≈ 1,200 for a two-hour talk).
    op.create_index("ix_segments_item_start", "transcript_segments", ["media_item_id", "start_s"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_segments_item_start", table_name="transcript_segments")
