"""viewer sessions: a vote and a searched question count once per browser session; hidden trending terms

Revision ID: 0009_page_viewer_sessions
Revises: 0008_speakers_profiles

- query_log.session_key / feedback.session_key: a random token the viewer's browser tab keeps in
  sessionStorage (no user, no IP; it dies with the tab). Trending counts distinct sessions, so
  one person searching the same words again and again counts once; a vote toggles
  (up → down → none) instead of adding rows: one row per (session, query, moment).
- trending_hidden: terms the admin hid from "Trending" (audited in audit_log).
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_page_viewer_sessions"
down_revision = "0008_speakers_profiles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("query_log", sa.Column("session_key", sa.String(length=64), nullable=True))
    op.add_column("feedback", sa.Column("session_key", sa.String(length=64), nullable=True))
    op.create_index("uq_feedback_session_vote", "feedback", ["session_key", "query", "chunk_id"], unique=True,
                    postgresql_where=sa.text("session_key IS NOT NULL"))
    op.create_table(
        "trending_hidden",
        sa.Column("term", sa.Text(), primary_key=True),
        sa.Column("hidden_by", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("trending_hidden")
    op.drop_index("uq_feedback_session_vote", table_name="feedback")
    op.drop_column("feedback", "session_key")
    op.drop_column("query_log", "session_key")
