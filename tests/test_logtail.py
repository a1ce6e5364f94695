"""The orchestrator's incremental reading of a worker's growing results log."""

from __future__ import annotations

import json

from bench.runner import CaseTracker, LogTail


def test_reads_only_new_complete_lines(tmp_path):
    log = tmp_path / "w.jsonl"
    tail = LogTail(log)
    assert tail.read_new() == []  # no file yet
    log.write_text(json.dumps({"a": 1}) + "\n" + '{"b": ')  # the second line is torn
    assert tail.read_new() == [{"a": 1}]
    assert tail.read_new() == []  # nothing new, and the torn line is not lost...
    with open(log, "a") as fh:
        fh.write('2}\n["not a record"]\n')
    assert tail.read_new() == [{"b": 2}]  # ...it is read once complete; a non-object skipped
    assert tail.offset == log.stat().st_size


def test_tracker_knows_the_case_in_flight_and_a_restart(tmp_path):
    log = tmp_path / "w.jsonl"
    tracker = CaseTracker(log)
    lines = [
        {"event": "start", "case_id": "a", "t": 1},
        {"event": "end", "case_id": "a", "t": 2, "status": "ok"},
        {"event": "start", "case_id": "b", "t": 3},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in lines))
    tracker.update()
    assert set(tracker.ended) == {"a"} and tracker.in_flight()["case_id"] == "b"
    with open(log, "a") as fh:
        fh.write(json.dumps({"event": "start", "case_id": "a", "t": 4}) + "\n")
    tracker.update()
    assert "a" not in tracker.ended  # restarted: its earlier end no longer counts
    assert tracker.in_flight()["case_id"] == "a"
