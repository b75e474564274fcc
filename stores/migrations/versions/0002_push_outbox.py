"""Durable push deliveries (the outbox), and a realm per ACP session (IDE sessions and the
self-agent's share one PostgreSQL database but never one session list).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "a2a_push_outbox",
        sa.Column("task_id", sa.Text, primary_key=True),
        sa.Column("config_id", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.Text, nullable=False, server_default=""),
        sa.Column("lease_until", sa.Double, nullable=False, server_default="0"),
    )
    op.create_index("a2a_push_outbox_lease", "a2a_push_outbox", ["lease_until"])
    op.add_column("acp_sessions", sa.Column("realm", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("acp_sessions", "realm")
    op.drop_index("a2a_push_outbox_lease", "a2a_push_outbox")
    op.drop_table("a2a_push_outbox")
