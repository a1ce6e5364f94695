"""For the trends report: indexes its queries use, and runs a person excluded.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

- ``ix_cases_host_device_case``: a case's series across runs (host, device, case_id) is
  what the trends report reads; without it, every query scans every case of every run.
- ``ix_runs_host_device_commit``: a machine's runs in commit order.
- ``runs.excluded_reason``: why a person took a run out of the trends (a machine that
  was busy, a broken build): NULL, the default for every run, means it counts. A
  change-point search has no other defence against one bad run, and deleting the run
  would lose it. ``xfbench history exclude RUN --reason ...`` sets it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_cases_host_device_case", "cases", ["host", "device", "case_id"])
    op.create_index("ix_runs_host_device_commit", "runs", ["host", "device_label", "commit_time"])
    op.add_column("runs", sa.Column("excluded_reason", sa.Text, nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35 and newer): batch mode would rebuild
    # the table, and dropping the old one would cascade to every run's cases.
    op.drop_column("runs", "excluded_reason")
    op.drop_index("ix_runs_host_device_commit", table_name="runs")
    op.drop_index("ix_cases_host_device_case", table_name="cases")
