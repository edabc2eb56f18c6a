"""sentence vectors: the sentence locator picks a moment's link sentence by meaning

Revision ID: 0011_landing3_sentence_vectors
Revises: 0010_replicapage_qlog_session

One row per transcript sentence (as core/search/moments.py cuts an item's segments), with its
vector in the item's embedding space. Existing archives are filled in the background by the
scheduler's re-embed tick (or `python -m core reembed`); until an item has them, its links are
placed by the query's words alone, as before.
"""
import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op

revision = "0011_landing3_sentence_vectors"
down_revision = "0010_replicapage_qlog_session"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sentence_vectors",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("media_item_id", sa.Integer(), sa.ForeignKey("media_items.id", ondelete="CASCADE"), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=False),
        sa.Column("embedding", pgvector.sqlalchemy.vector.VECTOR(), nullable=False),
        sa.Column("embedding_space_id", sa.SmallInteger(),
                  sa.ForeignKey("embedding_spaces.id", ondelete="CASCADE"), nullable=False),
    )
    # Search reads the sentences of ≤ 30 windows per query by (item, start second).
    op.create_index("ix_sentence_vectors_item_start", "sentence_vectors", ["media_item_id", "start_s"])


def downgrade() -> None:
    op.drop_index("ix_sentence_vectors_item_start", table_name="sentence_vectors")
    op.drop_table("sentence_vectors")
