"""The initial schema: runs, their cases, each case's measurements, the models.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Written out in full rather than from ``bench.history.db``'s tables, which describe the
newest schema: a migration must build what its revision was, forever.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("device_label", sa.Text),
        sa.Column("mode", sa.Text),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("elapsed_s", sa.Float),
        sa.Column("complete", sa.Boolean, nullable=False),
        sa.Column("commit", sa.Text),
        sa.Column("commit_time", sa.DateTime(timezone=True)),
        sa.Column("commit_time_source", sa.Text),
        sa.Column("dirty", sa.Boolean),
        sa.Column("python", sa.Text),
        sa.Column("os", sa.Text),
        sa.Column("cpu_model", sa.Text),
        sa.Column("gpus", sa.Text),
        sa.Column("options", sa.Text),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("fingerprint_sha256", sa.Text, nullable=False),
        sa.Column("source_path", sa.Text),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("xfbench_version", sa.Text),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id",
            sa.Text,
            sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("case_id", sa.Text, nullable=False),
        sa.Column("host", sa.Text),
        sa.Column("device", sa.Text),
        sa.Column("device_name", sa.Text),
        sa.Column("framework", sa.Text),
        sa.Column("model", sa.Text),
        sa.Column("runtime", sa.Text),
        sa.Column("exporter", sa.Text),
        sa.Column("phase", sa.Text),
        sa.Column("batch_size", sa.Integer),
        sa.Column("threads", sa.Integer),
        sa.Column("processes", sa.Integer),
        sa.Column("rounds", sa.Integer),
        sa.Column("calls_per_round", sa.Integer),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("unstable", sa.Boolean),
        sa.Column("busy", sa.Boolean),
        sa.Column("other_cpus", sa.Float),
        sa.Column("steal_cpus", sa.Float),
        sa.UniqueConstraint("run_id", "case_id", name="uq_cases_run_case"),
    )
    op.create_table(
        "measurements",
        sa.Column(
            "case_pk",
            sa.Integer,
            sa.ForeignKey("cases.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("statistic", sa.Text, primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("ci_low", sa.Float),
        sa.Column("ci_high", sa.Float),
    )
    op.create_table(
        "models",
        sa.Column(
            "run_id",
            sa.Text,
            sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("framework", sa.Text, primary_key=True),
        sa.Column("model", sa.Text, primary_key=True),
        sa.Column("host", sa.Text),
        sa.Column("parameters", sa.BigInteger),
        sa.Column("test_accuracy", sa.Float),
        sa.Column("quality", sa.Text),
        sa.Column("time_to_accuracy_s", sa.Float),
        sa.Column("train_seconds", sa.Float),
        sa.Column("exporter", sa.Text),
        sa.Column("onnx_opset", sa.BigInteger),
        sa.Column("onnx_nodes", sa.BigInteger),
        sa.Column("onnx_parity_max_abs_diff", sa.Float),
        sa.Column("reference_max_abs_diff", sa.Float),
        sa.Column("initializers_stripped", sa.BigInteger),
        sa.Column("flops_per_sample", sa.BigInteger),
        sa.Column("op_histogram", sa.Text),
    )


def downgrade() -> None:
    for table in ("models", "measurements", "cases", "runs"):
        op.drop_table(table)
