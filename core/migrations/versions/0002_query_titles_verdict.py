"""query handling: searchable titles/descriptions, the verdict of each logged query

Revision ID: 0002_query_titles_verdict
Revises: 0001
Create Date: 2026-12-01 08:00:00

- media_items.search_tsv: title (weight A) + description (weight B) as one stored tsvector
  with a GIN index, so a title finds its video even when the transcript never says the words,
  and a listed video that is not transcribed yet is found at all.
- query_log.verdict: 'answered' | 'related' | 'nothing' (NULL: logged without one). Trending
  and autocomplete learn only from queries the archive answered.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_query_titles_verdict"
down_revision = "0001"
branch_labels = None
depends_on = None

SEARCH_TSV = (
    "setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(description, '')), 'B')"
)


def upgrade() -> None:
    op.add_column(
        "media_items",
        sa.Column("search_tsv", postgresql.TSVECTOR(), sa.Computed(SEARCH_TSV, persisted=True), nullable=True),
    )
    # fastupdate off: items are few and written rarely, and a pending list that only VACUUM
    # merges made every title lookup scan it linearly (2–4 ms at 3.6k fresh items).
    op.create_index("ix_media_items_search_tsv", "media_items", ["search_tsv"], unique=False, postgresql_using="gin",
                    postgresql_with={"fastupdate": "off"})
    op.add_column("query_log", sa.Column("verdict", sa.String(length=16), nullable=True))
    op.create_check_constraint(
        "ck_query_log_verdict", "query_log", "verdict IS NULL OR verdict IN ('answered', 'related', 'nothing')"
    )


def downgrade() -> None:
    op.drop_constraint("ck_query_log_verdict", "query_log", type_="check")
    op.drop_column("query_log", "verdict")
    op.drop_index("ix_media_items_search_tsv", table_name="media_items", postgresql_using="gin")
    op.drop_column("media_items", "search_tsv")
