"""query_log: an index on (session_key, query) for the page's once-per-session log

Revision ID: 0010_replicapage_qlog_session
Revises: 0009_page_viewer_sessions

The viewer page's query-log row is written to the primary through a retried queue
(core/primary_writes.py); a retry after an ambiguous failure must not count the search twice,
so suggest.log_query stores one row per (browser session, query) and looks it up first. Not
unique: rows logged before this revision may already repeat a pair (a reload of the page).
"""
import sqlalchemy as sa
from alembic import op

revision = "0010_replicapage_qlog_session"
down_revision = "0009_page_viewer_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_query_log_session_query", "query_log", ["session_key", "query"],
                    postgresql_where=sa.text("session_key IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_query_log_session_query", table_name="query_log")
