"""The results history database (bench/history/db.py, ingest.py, cli.py) on real
databases: every test that touches one runs on a SQLite file and on a PostgreSQL server.

PostgreSQL comes from ``$XFBENCH_TEST_PG_URL`` (a server on which the test user may
create databases: each test gets a fresh one, dropped after it). Start a throwaway one
with ``eval "$(.ci/postgres.sh start)"`` (``.ci/postgres.sh stop`` ends it). Without it
the PostgreSQL half is skipped, saying so, except under CI (``$CI`` set), where it fails:
CI must test PostgreSQL. Nothing is mocked; the runs are the recorded fixtures
(tests/fixtures/runs) with the summary.csv and models.csv the report writes from them.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sa = pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")
pd = pytest.importorskip("pandas")

from bench.cli import main  # noqa: E402
from bench.history import db  # noqa: E402
from bench.history.db import HistoryError  # noqa: E402
from bench.history.ingest import ingest_after_run, ingest_run, read_run, write_run  # noqa: E402
from bench.rundir import mark_incomplete  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "runs"
PG_ENV = "XFBENCH_TEST_PG_URL"
#: The fixture runs under the names `xfbench bench` gave them (their fingerprint's time).
RUNS = {"cpu-a": "20261125-035750-vm-cpu", "cpu-b": "20261125-035835-vm-cpu"}
STAT_COLUMNS = [c for c, *_ in db.STATISTICS.values()]


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def built_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The two fixture runs as complete run folders: their summary.csv and models.csv
    computed by the report code, as `xfbench bench` leaves them."""
    from bench.report import load_runs

    root = tmp_path_factory.mktemp("runs")
    made = {}
    for fixture, name in RUNS.items():
        run = root / name
        shutil.copytree(FIXTURES / fixture, run)
        data = load_runs([run])
        data.cases.to_csv(run / "summary.csv", index=False)
        data.models.to_csv(run / "models.csv", index=False)
        made[fixture] = run
    return made


@pytest.fixture
def run_a(built_runs: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of run A (tests may damage it)."""
    return Path(shutil.copytree(built_runs["cpu-a"], tmp_path / "runs" / RUNS["cpu-a"]))


@pytest.fixture
def run_b(built_runs: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(built_runs["cpu-b"], tmp_path / "runs" / RUNS["cpu-b"]))


def _postgres_base() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        why = (
            f"no PostgreSQL to test the history on: set {PG_ENV} to a server's URL, or start "
            f'a throwaway one with: eval "$(.ci/postgres.sh start)"'
        )
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI is set: CI must test PostgreSQL, not skip it)")
        pytest.skip(why)
    pytest.importorskip("psycopg")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new PostgreSQL database (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'history.db'}"
        return
    base = db.parse_url(_postgres_base())
    name = f"xfbench_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield base.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture(autouse=True)
def _no_xfbench_db(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own $XFBENCH_DB must not receive the tests' runs."""
    monkeypatch.delenv(db.ENV_VAR, raising=False)


def raw_engine(url: str) -> sa.Engine:
    """An engine that neither creates nor migrates anything (to look at what is there)."""
    return db.create_history_engine(url)


def count(url: str, table: str) -> int:
    engine = raw_engine(url)
    try:
        with engine.connect() as conn:
            if table not in sa.inspect(conn).get_table_names():
                return 0
            return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
    finally:
        engine.dispose()


def summary(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "summary.csv")


def stored_measurements(n_cells: pd.DataFrame) -> int:
    return int(n_cells[STAT_COLUMNS].notna().sum().sum())


def closed_port() -> int:
    """A localhost port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- ingest and read back -------------------------------------------------------------


def test_a_run_is_stored_and_read_back_as_its_summary_says(
    db_url: str, run_a: Path, run_b: Path
) -> None:
    result = ingest_run(run_a, db_url)
    cases = summary(run_a)
    assert result.added and result.run_id == RUNS["cpu-a"]
    assert result.counts == {
        "cases": len(cases),
        "measurements": stored_measurements(cases),
        "models": len(pd.read_csv(run_a / "models.csv")),
    }
    assert count(db_url, "cases") == len(cases) == 76
    assert count(db_url, "measurements") == result.counts["measurements"]
    assert count(db_url, "models") == 4

    series = db.load_series(db_url)
    assert list(series.columns) == db.SERIES_COLUMNS
    ok = cases[(cases.status == "ok") & cases.p50_ms.notna()].set_index("case_id")
    assert len(series) == len(ok) > 0
    got = series.set_index("case_id").loc[ok.index]
    for column in ("p50_ms", "p50_ci_low_ms", "p50_ci_high_ms"):
        assert got[column].tolist() == ok[column].tolist()  # stored exactly, not rounded
    for column in ("batch_size", "threads", "processes", "rounds"):
        assert got[column].astype(int).tolist() == ok[column].astype(int).tolist()
    for column in ("framework", "model", "runtime", "phase", "host", "device", "device_name"):
        assert got[column].tolist() == ok[column].tolist()
    assert got.unstable.tolist() == ok.unstable.astype(bool).tolist()
    assert got.busy.tolist() == ok.busy.astype(bool).tolist()
    fingerprint = json.loads((run_a / "fingerprint.json").read_text())
    assert set(series.run_id) == {RUNS["cpu-a"]}
    assert set(series.commit) == {fingerprint["machine"]["git"]["commit"]}
    assert str(series.run_time.dtype).endswith(", UTC]")
    assert str(series.commit_time.dtype).endswith(", UTC]")
    assert (series.run_time == pd.Timestamp("2026-11-25T03:57:50Z")).all()
    assert series.complete.all() and set(series["mode"]) == {"full"}

    # Every statistic of one case, with its interval, as the CSV has it.
    row = cases[cases.phase == "inference"].iloc[0]
    engine = raw_engine(db_url)
    with engine.connect() as conn:
        stored = {
            r.statistic: r
            for r in conn.execute(
                sa.select(db.measurements)
                .join(db.cases, db.cases.c.id == db.measurements.c.case_pk)
                .where(db.cases.c.case_id == row.case_id)
            )
        }
        runs_row = conn.execute(sa.select(db.runs)).one()
    engine.dispose()
    expected = {s for s, (col, *_) in db.STATISTICS.items() if pd.notna(row[col])}
    assert set(stored) == expected and {"p50_ms", "throughput_sps", "p99_ms"} <= expected
    assert stored["p50_ms"].value == row.p50_ms and stored["p50_ms"].ci_low == row.p50_ci_low_ms
    assert stored["throughput_sps"].ci_high == row.throughput_ci_high_sps
    assert stored["p99_ms"].ci_low is None
    assert runs_row.host == "vm" and runs_row.device_label == "cpu" and runs_row.mode == "full"
    assert runs_row.elapsed_s == fingerprint["elapsed_s"] and runs_row.complete is True
    assert json.loads(runs_row.fingerprint) == fingerprint
    assert json.loads(runs_row.options) == fingerprint["options"]
    assert runs_row.source_path == str(run_a.resolve())

    # A second run: two points per case, in commit then run order; the filters.
    ingest_run(run_b, db_url)
    both = db.load_series(db_url)
    assert len(both) == 2 * len(ok)
    assert both.groupby("case_id").run_id.apply(list).map(tuple).unique().tolist() == [
        (RUNS["cpu-a"], RUNS["cpu-b"])
    ]
    torch_cnn = db.load_series(db_url, host="vm", device="cpu", models=["cnn"], frameworks="torch")
    assert len(torch_cnn) > 0 and set(torch_cnn.model) == {"cnn"}
    assert set(torch_cnn.framework) == {"torch"}
    assert len(torch_cnn) == 2 * ((ok.model == "cnn") & (ok.framework == "torch")).sum()
    assert db.load_series(db_url, host="another-host").empty
    assert list(db.load_series(db_url, device="cuda").columns) == db.SERIES_COLUMNS


def test_an_older_summary_without_the_newer_columns_is_stored_with_nulls(
    db_url: str, run_a: Path
) -> None:
    cases = summary(run_a)
    older = cases.drop(
        columns=["busy", "other_cpus", "steal_cpus", "import_ms", "load_ms", "first_call_ms"]
    )
    older.to_csv(run_a / "summary.csv", index=False)
    (run_a / "models.csv").unlink()  # and no models.csv at all
    result = ingest_run(run_a, db_url)
    assert result.added and result.counts["cases"] == len(cases)
    assert result.counts["models"] == 0
    engine = raw_engine(db_url)
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).where(db.cases.c.busy.is_not(None))).scalar()
            == 0
        )
        assert (
            conn.execute(
                sa.select(sa.func.count()).where(db.cases.c.other_cpus.is_not(None))
            ).scalar()
            == 0
        )
    engine.dispose()
    assert not db.load_series(db_url).busy.any()


def test_the_same_run_again_is_already_there_and_nothing_is_written(
    db_url: str, run_a: Path, tmp_path: Path
) -> None:
    first = ingest_run(run_a, db_url)
    before = {t: count(db_url, t) for t in db.TABLES}
    again = ingest_run(run_a, db_url)
    assert first.added and not again.added
    assert "already in the history" in again.describe()
    # A copy under another folder name (reports/reference) is the same run.
    copy = Path(shutil.copytree(run_a, tmp_path / "reference"))
    as_copy = ingest_run(copy, db_url)
    assert not as_copy.added and as_copy.run_id == RUNS["cpu-a"]
    assert {t: count(db_url, t) for t in db.TABLES} == before
    assert before["runs"] == 1


def test_a_different_run_under_a_stored_name_is_refused_not_merged(
    db_url: str, run_a: Path, tmp_path: Path
) -> None:
    ingest_run(run_a, db_url)
    other = Path(shutil.copytree(run_a, tmp_path / "other-machine" / run_a.name))
    fingerprint = json.loads((other / "fingerprint.json").read_text())
    fingerprint["machine"]["cpu_model"] = "Another CPU"
    (other / "fingerprint.json").write_text(json.dumps(fingerprint))
    before = {t: count(db_url, t) for t in db.TABLES}
    with pytest.raises(HistoryError, match="different run") as err:
        ingest_run(other, db_url)
    assert "nothing was merged" in str(err.value) and RUNS["cpu-a"] in str(err.value)
    assert {t: count(db_url, t) for t in db.TABLES} == before
    engine = raw_engine(db_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(db.runs.c.cpu_model)).scalar_one()
    engine.dispose()
    assert stored == "AMD EPYC"


def _damage_summary(run: Path) -> None:
    with (run / "summary.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    rows[40][rows[0].index("p50_ms")] = "fast"
    with (run / "summary.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)


def _damage_models(run: Path) -> None:
    # A value the files' parser takes (a whole number) but no database column holds: the
    # run, its cases and measurements are written before the models fail.
    models = pd.read_csv(run / "models.csv")
    models["parameters"] = models["parameters"].astype(object)
    models.loc[len(models) - 1, "parameters"] = str(10**20)
    models.to_csv(run / "models.csv", index=False)


@pytest.mark.parametrize(
    ("damage", "message"),
    [(_damage_summary, r"summary.csv, line 41, column p50_ms: 'fast' is not a number"),
     (_damage_models, r"refused run 20261125-035750-vm-cpu.*nothing of the run was written")],
    ids=["summary-cell", "models-value-the-database-refuses"],
)  # fmt: skip
def test_a_damaged_run_is_refused_and_leaves_nothing_behind(
    db_url: str, run_a: Path, run_b: Path, damage: object, message: str
) -> None:
    ingest_run(run_b, db_url)  # the history holds another run already
    before = {t: count(db_url, t) for t in db.TABLES}
    damage(run_a)  # type: ignore[operator]
    with pytest.raises(HistoryError, match=message):
        ingest_run(run_a, db_url)
    assert {t: count(db_url, t) for t in db.TABLES} == before
    assert set(db.load_series(db_url).run_id) == {RUNS["cpu-b"]}


def test_a_cut_off_summary_names_its_line(db_url: str, run_a: Path) -> None:
    text = (run_a / "summary.csv").read_text().splitlines()
    text[-1] = ",".join(text[-1].split(",")[:10])
    (run_a / "summary.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(HistoryError, match=rf"line {len(text)}: 10 fields where the header has 43"):
        ingest_run(run_a, db_url)
    assert count(db_url, "runs") == 0


def test_an_interrupted_run_is_refused_unless_asked_for(db_url: str, run_a: Path) -> None:
    mark_incomplete(run_a, "interrupted by Ctrl-C (SIGINT) during timing")
    with pytest.raises(
        HistoryError, match=r"incomplete \(interrupted by Ctrl-C.*--include-incomplete"
    ):
        ingest_run(run_a, db_url)
    assert count(db_url, "runs") == 0
    result = ingest_run(run_a, db_url, include_incomplete=True)
    assert result.added and not result.complete and "stored as incomplete" in result.describe()
    engine = raw_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(db.runs.c.complete)).scalar_one() is False
    engine.dispose()
    assert count(db_url, "cases") == 76
    assert db.load_series(db_url).empty  # the trends leave it out


def test_not_a_run_folder_says_what_to_do(db_url: str, run_a: Path, tmp_path: Path) -> None:
    (run_a / "summary.csv").unlink()
    with pytest.raises(
        HistoryError, match=rf"no summary.csv: rebuild it with `xfbench report {run_a}"
    ):
        ingest_run(run_a, db_url)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HistoryError, match="not an xfbench run folder"):
        ingest_run(empty, db_url)
    with pytest.raises(HistoryError, match="does not exist"):
        ingest_run(tmp_path / "nowhere", db_url)
    killed = tmp_path / "20261126-020325-vm-cpu"  # killed at once: the marker, nothing else
    killed.mkdir()
    mark_incomplete(killed)
    with pytest.raises(HistoryError, match="stopped before it measured anything"):
        ingest_run(killed, db_url, include_incomplete=True)
    assert count(db_url, "runs") == 0


def test_commit_time_from_the_fingerprint_git_or_the_run_start(
    db_url: str, run_a: Path, tmp_path: Path
) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    head_time = subprocess.run(
        ["git", "show", "-s", "--format=%cI", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    cases = [
        ("recorded", {"commit": head, "dirty": False, "commit_time": "2026-01-02T03:04:05+00:00"}),
        ("looked-up", {"commit": head, "dirty": False}),
        ("unknown", {"commit": "0" * 40, "dirty": False}),
    ]
    for i, (name, git) in enumerate(cases):
        run = Path(shutil.copytree(run_a, tmp_path / name / f"2026112{i}-000000-vm-cpu"))
        fingerprint = json.loads((run / "fingerprint.json").read_text())
        fingerprint["machine"]["git"] = git
        (run / "fingerprint.json").write_text(json.dumps(fingerprint))
        frame = pd.read_csv(run / "summary.csv")
        frame["run"] = run.name
        frame.to_csv(run / "summary.csv", index=False)
        ingest_run(run, db_url)
    engine = raw_engine(db_url)
    with engine.connect() as conn:
        got = {
            r.run_id[:8]: (r.commit_time_source, r.commit_time.replace(tzinfo=None))
            for r in conn.execute(sa.select(db.runs))
        }
    engine.dispose()
    assert got["20261120"] == ("fingerprint", pd.Timestamp("2026-01-02T03:04:05").to_pydatetime())
    assert got["20261121"][0] == "git"
    assert pd.Timestamp(got["20261121"][1], tz="UTC") == pd.Timestamp(head_time).tz_convert("UTC")
    assert got["20261122"] == ("run start", pd.Timestamp("2026-11-25T03:57:50").to_pydatetime())


def test_the_fingerprint_records_the_commit_time_in_utc() -> None:
    from bench.fingerprint import commit_time_utc, git_commit

    git = git_commit()
    shown = subprocess.run(
        ["git", "show", "-s", "--format=%ct", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    assert git["commit_time"].endswith("+00:00")
    assert pd.Timestamp(git["commit_time"]).timestamp() == int(shown)
    assert commit_time_utc("2026-11-26T09:07:46+02:00") == "2026-11-26T07:07:46+00:00"
    assert commit_time_utc("not a date") is None


# --- the schema and its revisions -----------------------------------------------------


def test_a_database_at_0001_with_runs_in_it_is_migrated_on_open(
    db_url: str, run_a: Path, run_b: Path
) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = raw_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(db._alembic_config(conn), "0001")
    # Written by the ingest code at 0001, which predates excluded_reason and the indexes.
    for run in (run_a, run_b):
        assert write_run(engine, read_run(run)).added
    with engine.connect() as conn:
        assert db.database_revision(conn)[0] == "0001"
        assert "excluded_reason" not in {c["name"] for c in sa.inspect(conn).get_columns("runs")}
    engine.dispose()
    before = {t: count(db_url, t) for t in db.TABLES}

    series = db.load_series(db_url)  # opening it migrates it
    engine = raw_engine(db_url)
    with engine.connect() as conn:
        assert db.database_revision(conn)[0] == db.head_revision() == "0002"
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("cases")}
        assert "ix_cases_host_device_case" in indexes
        assert (
            conn.execute(
                sa.select(sa.func.count()).where(db.runs.c.excluded_reason.is_(None))
            ).scalar()
            == 2
        )
        # The migrations build exactly the tables bench/history/db.py reads and writes.
        assert compare_metadata(MigrationContext.configure(conn), db.metadata) == []
    engine.dispose()
    assert {t: count(db_url, t) for t in db.TABLES} == before and before["cases"] == 152
    assert len(series) == 152 and set(series.run_id) == set(RUNS.values())


def test_a_history_from_a_newer_xfbench_is_refused_and_left_alone(
    db_url: str, run_a: Path, run_b: Path
) -> None:
    ingest_run(run_a, db_url)
    engine = raw_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    for attempt in (lambda: ingest_run(run_b, db_url), lambda: db.load_series(db_url)):
        with pytest.raises(HistoryError) as err:
            attempt()
        text = str(err.value)
        assert "schema revision 0099" in text and "the newest it knows is 0002" in text
        assert "upgrade xfbench" in text and "--db" in text
    assert count(db_url, "runs") == 1
    engine = raw_engine(db_url)
    with engine.connect() as conn:
        assert db.database_revision(conn)[0] == "0099"
    engine.dispose()


def test_a_database_that_is_not_a_history_is_refused_and_left_alone(
    db_url: str, run_a: Path
) -> None:
    engine = raw_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total FLOAT)"))
    engine.dispose()
    with pytest.raises(HistoryError, match=r"holds tables \(invoices\) but no alembic_version"):
        ingest_run(run_a, db_url)
    engine = raw_engine(db_url)
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == ["invoices"]
    engine.dispose()


def test_reading_an_empty_or_missing_history_says_to_ingest_first(
    db_url: str, tmp_path: Path
) -> None:
    with pytest.raises(HistoryError, match="history ingest"):
        db.load_series(db_url)
    if db_url.startswith("sqlite"):
        assert not (tmp_path / "history.db").exists()  # reading created no file
    else:
        assert count(db_url, "alembic_version") == 0  # nor any table


# --- URLs and unreachable databases ---------------------------------------------------


def test_the_url_comes_from_db_then_the_environment_then_the_out_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "results"
    assert db.resolve_url(None, out) == db.default_url(out)
    assert str(db.resolve_url(None, out).database).endswith("results/history.db")
    assert not out.exists()
    db.resolve_url(None, out, create_default_folder=True)
    assert out.is_dir()  # the default file's folder is made (it is the run folders')
    monkeypatch.setenv(db.ENV_VAR, "sqlite:///from-env.db")
    assert db.resolve_url(None, out).database == "from-env.db"
    assert db.resolve_url("sqlite:///given.db", out).database == "given.db"
    pg = db.resolve_url("postgresql://bench:s3cret@db.example:5432/xfbench", out)
    assert pg.drivername == "postgresql+psycopg"  # the driver the history extra installs
    assert db.display_url(pg) == "postgresql+psycopg://bench:***@db.example:5432/xfbench"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "mysql://u:s3cret@h/db",
            r"mysql database; the results history supports SQLite and PostgreSQL",
        ),
        (
            "postgres//bench:s3cret@db.example/xfbench",
            r"is not a database URL; write sqlite:///PATH",
        ),
        ("sqlite://", r"in-memory SQLite database"),
        (
            "sqlite:///{tmp}/missing/folder/h.db",
            r"folder of the history database .* does not exist",
        ),
        ("postgresql+pg8000://u:s3cret@h/db", r"driver .* is not installed .*pip install"),
        ("sqlite+nodriver:///x.db", r"knows no database driver"),
    ],
)
def test_bad_urls_are_clear_errors_without_the_password(
    url: str, message: str, tmp_path: Path
) -> None:
    if url.startswith("postgresql+pg8000"):
        try:
            import pg8000  # noqa: F401

            pytest.skip("pg8000 is installed here")
        except ImportError:
            pass
    with pytest.raises(HistoryError, match=message) as err:
        db.create_history_engine(url.format(tmp=tmp_path))
    assert "s3cret" not in str(err.value)


def test_an_unreachable_postgresql_fails_in_bounded_time_naming_the_fix() -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql://bench:s3cret@127.0.0.1:{closed_port()}/xfbench"
    start = time.monotonic()
    with pytest.raises(HistoryError) as err:
        db.open_history(url)
    assert time.monotonic() - start < 5
    text = str(err.value)
    assert text.startswith(
        "cannot open the results history postgresql+psycopg://bench:***@127.0.0.1:"
    )
    assert "refused" in text.lower() and "s3cret" not in text
    assert "is the server running" in text and "XFBENCH_DB" in text and "default SQLite" in text


def test_a_postgresql_server_that_never_answers_times_out_after_about_5_s() -> None:
    """A listening socket that accepts and then says nothing: only the connect timeout
    ends the wait."""
    pytest.importorskip("psycopg")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(HistoryError, match=r"cannot open the results history .*timeout"):
            db.open_history(f"postgresql://bench@127.0.0.1:{port}/xfbench")
        took = time.monotonic() - start
    assert db.CONNECT_TIMEOUT_S - 1 <= took < 2 * db.CONNECT_TIMEOUT_S


# --- concurrency ----------------------------------------------------------------------

_CHILD = """
import sys, time
from bench.cli import main
import bench.history.db, bench.history.ingest, sqlalchemy, alembic.command  # loaded before the race
start = float(sys.argv[1])
time.sleep(max(0.0, start - time.time()))
sys.exit(main(["history", "ingest", sys.argv[2], "--db", sys.argv[3]]))
"""


def test_two_processes_adding_one_run_at_once_leave_one_copy(db_url: str, run_a: Path) -> None:
    """Two real processes, started to begin at the same instant, on a database that does
    not even have its schema yet: both create-or-upgrade and insert race."""
    start = time.time() + 2.5  # after both interpreters have imported everything
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(start), str(run_a), db_url],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=90) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    said = sorted(
        "added"
        if "added to the history" in out
        else "already"
        if "already in the history" in out
        else out + err
        for out, err in outputs
    )
    assert said == ["added", "already"], outputs
    assert count(db_url, "runs") == 1 and count(db_url, "cases") == 76
    assert len(db.load_series(db_url)) == 76


def test_threads_adding_one_run_through_one_engine_leave_one_copy(db_url: str, run_a: Path) -> None:
    results: list[object] = []
    with db.history_engine(db_url) as engine:
        barrier = threading.Barrier(4)

        def add() -> None:
            parsed = read_run(run_a)
            barrier.wait()
            try:
                results.append(write_run(engine, parsed).added)
            except Exception as exc:  # collected: an exception in a thread is silent
                results.append(exc)

        threads = [threading.Thread(target=add) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert sorted(results, key=str) == [False, False, False, True], results
    assert count(db_url, "cases") == 76


# --- the command line -----------------------------------------------------------------


def test_history_ingest_reports_each_run_and_exits_2_when_any_is_refused(
    db_url: str, run_a: Path, run_b: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mark_incomplete(run_b, "interrupted by SIGTERM during timing")
    empty = tmp_path / "runs" / "20261126-000000-vm-cpu"
    empty.mkdir()
    status = main(["history", "ingest", str(run_a), str(run_b), str(empty), "--db", db_url])
    out, err = capsys.readouterr()
    assert status == 2
    assert f"xfbench: {RUNS['cpu-a']}: added to the history (76 cases, " in out
    assert "1 added, 0 already there, 2 refused, of 3 run folder(s)" in out
    assert f"xfbench: error: {run_b}: not added: {RUNS['cpu-b']} is incomplete" in err
    assert f"xfbench: error: {empty}: not added: " in err and "not an xfbench run folder" in err
    assert "Traceback" not in out + err
    assert count(db_url, "runs") == 1

    # Again, over the folder that holds them: run A is there, B is added with the flag.
    status = main(["history", "ingest", str(run_a.parent), "--db", db_url, "--include-incomplete"])
    out, err = capsys.readouterr()
    assert f"xfbench: {RUNS['cpu-a']}: already in the history since " in out
    assert f"xfbench: {RUNS['cpu-b']}: added to the history (76 cases" in out
    assert "stored as incomplete" in out
    # The empty folder is no run of the folder's (a folder of runs adds only runs).
    assert f"xfbench: {empty}: passed over (not a run folder" in out
    assert status == 0 and "1 added, 1 already there, 0 refused, of 2" in out and err == ""

    status = main(
        ["history", "ingest", str(run_a), str(run_b), "--db", db_url, "--include-incomplete"]
    )
    out, err = capsys.readouterr()
    assert status == 0 and "0 added, 2 already there, 0 refused" in out and err == ""


def test_history_ingest_finds_its_database_from_the_environment_or_out(
    db_url: str, run_a: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv(db.ENV_VAR, db_url)
    assert main(["history", "ingest", str(run_a)]) == 0
    assert f"history {db.display_url(db_url)}: 1 added" in capsys.readouterr().out
    assert count(db_url, "runs") == 1
    monkeypatch.delenv(db.ENV_VAR)
    out = tmp_path / "results"
    assert main(["history", "ingest", str(run_a), "--out", str(out)]) == 0
    assert (out / "history.db").is_file()
    assert count(f"sqlite:///{out / 'history.db'}", "cases") == 76


def test_history_errors_are_one_line_and_exit_2(
    run_a: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["history", "ingest", str(run_a), "--db", "mysql://u:s3cret@h/db"])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert err.startswith("xfbench: error: --db: mysql://u:***@h/db is a mysql database")
    assert "s3cret" not in err and "Traceback" not in err and err.count("\n") == 1
    status = main(
        [
            "history",
            "ingest",
            str(run_a),
            "--db",
            f"postgresql://u:s3cret@127.0.0.1:{closed_port()}/x",
        ]
    )
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("xfbench: error: cannot open the results history")
    assert "s3cret" not in err


def test_excluded_runs_leave_the_trends_and_come_back(
    db_url: str, run_a: Path, run_b: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest_run(run_a, db_url)
    ingest_run(run_b, db_url)
    assert (
        main(["history", "exclude", RUNS["cpu-b"], "--reason", "machine busy", "--db", db_url]) == 0
    )
    assert "left out of the trends (machine busy)" in capsys.readouterr().out
    assert set(db.load_series(db_url).run_id) == {RUNS["cpu-a"]}
    assert main(["history", "exclude", RUNS["cpu-b"], "--undo", "--db", db_url]) == 0
    assert set(db.load_series(db_url).run_id) == set(RUNS.values())
    assert main(["history", "exclude", "no-such-run", "--reason", "x", "--db", db_url]) == 2
    assert "not in the history" in capsys.readouterr().err
    assert main(["history", "exclude", RUNS["cpu-b"], "--db", db_url]) == 2
    assert "--reason" in capsys.readouterr().err


# --- after a benchmark run ------------------------------------------------------------


def test_after_a_run_it_is_added_and_said_in_one_line(db_url: str, run_a: Path) -> None:
    said: list[str] = []
    ingest_after_run(run_a, db_url, run_a.parent, said.append)
    assert len(said) == 1
    assert said[0].startswith(f"added to the history {db.display_url(db_url)}: 76 cases")
    ingest_after_run(run_a, db_url, run_a.parent, said.append)
    assert said[1] == f"{RUNS['cpu-a']} is in the history {db.display_url(db_url)} already"


def test_after_a_run_a_failing_history_is_a_warning_with_the_retry_command(
    run_a: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    said: list[str] = []
    unreachable = f"postgresql://bench:s3cret@127.0.0.1:{closed_port()}/xfbench"
    ingest_after_run(run_a, unreachable, run_a.parent, said.append)  # must not raise
    assert len(said) == 1 and said[0].startswith("warning: the run was not added")
    assert "cannot open the results history" in said[0] and "s3cret" not in said[0]
    assert said[0].endswith(
        f"add it later with `xfbench history ingest {run_a} --db '{db.display_url(unreachable)}'`"
    )
    assert "***" in said[0]
    # Without the database's driver: still a warning.
    ingest_after_run(run_a, "postgresql+pg8000://u@h/db", run_a.parent, said.append)
    assert said[1].startswith("warning: the run was not added to the results history")
    assert "is not installed" in said[1] or "pg8000" in said[1]
    # The default database under --out, a damaged run: the retry names --out.
    (run_a / "summary.csv").write_text("run,case_id\n")
    out = tmp_path / "elsewhere"
    ingest_after_run(run_a, None, out, said.append)
    assert "has no framework, model, status column" in said[2]
    assert said[2].endswith(f"`xfbench history ingest {run_a} --out {out}`")
    assert len(said) == 3


# --- found by a newcomer's trial ------------------------------------------------------


def test_a_local_fleet_part_is_stored_but_left_out_of_the_trends(
    db_url: str, run_a: Path, run_b: Path
) -> None:
    """`xfbench fleet --local N` times its parts at once on one machine: they must not
    become points of the machine's trends (a false regression turned a gate red)."""
    fp = json.loads((run_b / "fingerprint.json").read_text())
    fp["fleet"] = {"local": 2, "scheduler": None, "workers": [], "task": {}}
    (run_b / "fingerprint.json").write_text(json.dumps(fp))
    said: list[str] = []
    ingest_after_run(run_b, db_url, run_b.parent, said.append)
    assert "left out of the trends: timed by `xfbench fleet --local 2`" in said[0]
    assert count(db_url, "cases") > 0  # stored, with its data
    ingest_run(run_a, db_url)
    assert set(db.load_series(db_url).run_id) == {RUNS["cpu-a"]}
    assert main(["history", "exclude", RUNS["cpu-b"], "--undo", "--db", db_url]) == 0
    assert set(db.load_series(db_url).run_id) == set(RUNS.values())


def test_a_fleet_folder_is_ingested_as_its_parts(db_url: str, run_a: Path, run_b: Path) -> None:
    fleet = run_a.parent / "20261126-080000-vm-fleet"
    (fleet / "parts").mkdir(parents=True)
    (fleet / "fleet.json").write_text("{}")
    for run in (run_a, run_b):
        shutil.move(str(run), fleet / "parts" / run.name)
    assert main(["history", "ingest", str(fleet), "--db", db_url]) == 0
    assert set(db.load_series(db_url).run_id) == set(RUNS.values())
    # ... and inside a folder of runs (reports/), as `xfbench history ingest reports/`.
    assert main(["history", "ingest", str(run_a.parent), "--db", db_url]) == 0


def test_a_sqlite_url_a_slash_short_of_absolute_says_so(tmp_path: Path) -> None:
    where = tmp_path / "h"
    where.mkdir()
    relative = f"sqlite://{where}/history.db"  # three slashes: relative to the current folder
    with pytest.raises(HistoryError, match="three slashes name a relative path") as exc:
        db.create_history_engine(relative)
    assert f"sqlite:///{where}/history.db" in str(exc.value)  # the four-slash form


def test_a_bench_whose_history_cannot_be_opened_stops_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo in --db would otherwise be found after the whole run."""
    out = tmp_path / "reports"
    started = time.monotonic()
    unreachable = f"postgresql://nobody@127.0.0.1:{closed_port()}/x"
    code = main(
        ["bench", "-f", "sklearn", "-m", "mlp", "--quick", "--out", str(out), "--db", unreachable]
    )
    assert code == 2 and time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert "cannot open the results history" in err and "before the run starts" in err
    assert not [d for d in out.iterdir() if d.is_dir()]  # no run folder was made
