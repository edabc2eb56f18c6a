"""speaker_profiles: enrolled voices (a name and a voice vector); transcript_segments.speaker_by:
who set a segment's speaker (NULL: the transcript itself, Zoom or an inline label)

Revision ID: 0008_speakers_profiles
Revises: 0007_outage_admin_sessions
"""
import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector

revision = "0008_speakers_profiles"
down_revision = "0007_outage_admin_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "speaker_profiles",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("embedding", Vector(), nullable=False),
        sa.Column("encoder", sa.String(length=64), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("name", name="uq_speaker_profiles_name"),
    )
    op.add_column("transcript_segments", sa.Column("speaker_by", sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.drop_column("transcript_segments", "speaker_by")
    op.drop_table("speaker_profiles")
