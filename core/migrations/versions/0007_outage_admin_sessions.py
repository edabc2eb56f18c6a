"""admin_sessions: server-side admin sign-ins behind an HttpOnly cookie (token hashed at rest);
login_attempts.client: the sign-in throttle counts per client and user name

Revision ID: 0007_outage_admin_sessions
Revises: 0006_failures_breakers
"""
import sqlalchemy as sa
from alembic import op

revision = "0007_outage_admin_sessions"
down_revision = "0006_failures_breakers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("login_attempts", sa.Column("client", sa.Text(), nullable=True))
    op.create_index("ix_login_attempts_client_user_at", "login_attempts", ["client", "username", "at"])
    op.create_table(
        "admin_sessions",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True, unique=True),
        sa.Column("handoff_hash", sa.String(length=64), nullable=True, unique=True),
        sa.Column("handoff_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("admin_sessions")
    op.drop_index("ix_login_attempts_client_user_at", table_name="login_attempts")
    op.drop_column("login_attempts", "client")
