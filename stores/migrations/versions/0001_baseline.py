"""Baseline: the tables the SQLite stores created before migrations existed.

Every statement is IF NOT EXISTS, so a database made by an older Junction is adopted as is.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "a2a_tasks",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("caller", sa.Text, nullable=False),
        sa.Column("agent", sa.Text, nullable=False),
        sa.Column("remote_id", sa.Text, nullable=False),
        sa.Column("context_id", sa.Text, nullable=False),
        sa.Column("remote_context_id", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("created", sa.Double, nullable=False),
        sa.Column("updated", sa.Double, nullable=False),
        sa.Column("task", sa.LargeBinary, nullable=False),
        if_not_exists=True,
    )
    op.create_index(
        "a2a_tasks_caller_updated",
        "a2a_tasks",
        ["caller", sa.text("updated DESC"), sa.text("id DESC")],
        if_not_exists=True,
    )
    op.create_table(
        "a2a_contexts",
        sa.Column("caller", sa.Text, primary_key=True),
        sa.Column("context_id", sa.Text, primary_key=True),
        sa.Column("agent", sa.Text, nullable=False),
        sa.Column("remote_context_id", sa.Text, nullable=False),
        if_not_exists=True,
    )
    op.create_index(
        "a2a_contexts_remote",
        "a2a_contexts",
        ["caller", "agent", "remote_context_id"],
        if_not_exists=True,
    )
    op.create_table(
        "a2a_push_configs",
        sa.Column("caller", sa.Text, nullable=False),
        sa.Column("task_id", sa.Text, primary_key=True),
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("config", sa.LargeBinary, nullable=False),
        if_not_exists=True,
    )
    op.create_table(
        "acp_sessions",
        sa.Column("session_id", sa.Text, primary_key=True),
        sa.Column("cwd", sa.Text, nullable=False),
        sa.Column("additional_directories", sa.Text, nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("permissions", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.Column("owner", sa.Text),
        if_not_exists=True,
    )
    op.create_index(
        "acp_sessions_recent",
        "acp_sessions",
        [sa.text("updated_at DESC"), sa.text("session_id DESC")],
        if_not_exists=True,
    )
    op.create_table(
        "acp_history",
        sa.Column("session_id", sa.Text, primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("entry", sa.Text, nullable=False),
        if_not_exists=True,
    )


def downgrade() -> None:
    for table in ("acp_history", "acp_sessions", "a2a_push_configs", "a2a_contexts", "a2a_tasks"):
        op.drop_table(table)
