"""The report's note on runs timed by a fleet (``xfbench fleet``, bench/fleet.py).

Each part of a fleet run carries ``fleet`` in its ``fingerprint.json``: the fleet's
scheduler (or ``local``: N worker processes on one machine), its workers, and its own
group, worker, the workers it was tried on and status; the fleet's folder holds
``fleet.json`` with every group, those that never returned a part included. The note
says where each group ran and, first of all, when the workers shared one machine: then
their timings are not comparable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from bench.report.analysis import Section, code, frame_table
from bench.report.load import RunData


def fleets_of(data: RunData) -> dict[str, dict[str, Any]]:
    """Fleet run name -> its metadata (from the first part naming it), the parts'
    tasks, and its fleet.json where the parts lie in the fleet's folder."""
    fleets: dict[str, dict[str, Any]] = {}
    for run in data.runs:
        fp = data.environments.get(run) or {}
        meta = fp.get("fleet") if isinstance(fp.get("fleet"), dict) else None
        if meta is None:
            continue
        name = str(meta.get("run") or "?")
        entry = fleets.setdefault(name, {"meta": meta, "tasks": {}, "file": None})
        task = meta.get("task") if isinstance(meta.get("task"), dict) else {}
        entry["tasks"][str(task.get("label") or run)] = {**task, "part": run}
        folder = data.folders.get(run)
        if entry["file"] is None and folder is not None:
            path = Path(folder).parent.parent / "fleet.json"
            try:
                doc = json.loads(path.read_text())
                if isinstance(doc, dict) and doc.get("run") == name:
                    entry["file"] = doc
            except (OSError, ValueError):
                pass
    return fleets


def _workers(meta: dict[str, Any]) -> str:
    out = []
    for w in meta.get("workers") or []:
        if not isinstance(w, dict):
            continue
        gpus = w.get("gpus") or []
        extra = f", GPU {', '.join(map(str, gpus))}" if gpus else ""
        out.append(f"{w.get('name')} (host {w.get('host')}, {w.get('cpus')} CPUs{extra})")
    return "; ".join(out) or "unknown"


def fleet_sections(data: RunData) -> list[Section]:
    """One section per fleet run among the runs (none for ordinary runs)."""
    sections = []
    for name, entry in fleets_of(data).items():
        meta, tasks = entry["meta"], dict(entry["tasks"])
        for t in (entry["file"] or {}).get("tasks") or []:
            if isinstance(t, dict) and t.get("label") not in tasks:
                tasks[str(t.get("label"))] = t  # a group that returned no part
        notes = []
        local = meta.get("local")
        if local:
            notes.append(
                "**Timings from workers sharing one machine are not comparable.** This fleet "
                f"ran {local} worker processes on one machine (`xfbench fleet --local {local}`): "
                "their groups were timed at the same time on the same cores, each slowing "
                "the others by an amount no number here shows. It shows the fleet at work; "
                "for numbers, run `xfbench bench`, or a fleet of one `xfbench worker` per "
                "machine."
            )
        where = f"`--local {local}`" if local else code(meta.get("scheduler"))
        notes.append(
            f"**Fleet run** {code(name)}: {len(tasks)} worker group(s) sent to a Dask fleet "
            f"({where}; workers: {_workers(meta)}). Each group ran whole on one worker, one "
            "group per worker at a time, and is a run of its own here (its `run` and `host`). "
            "The tables are grouped by host: frameworks timed on different machines are not "
            "compared with each other."
        )
        failed = [t for t in tasks.values() if t.get("status") != "ok"]
        if failed:
            notes.append(
                f"**{len(failed)} group(s) were not timed"
                + (
                    " or stopped partway"
                    if any(t.get("status") == "partial" for t in failed)
                    else ""
                )
                + "**: "
                + "; ".join(f"{code(t.get('label'))}: {code(t.get('reason'))}" for t in failed)
                + '. Their cases are error rows ("Errors and unsupported cases") where the '
                "fleet could write them; every other group's results are kept."
            )
        rows = [
            {
                "group": t.get("label"),
                "worker": t.get("worker") or "",
                "host": t.get("host") or "",
                "tried on": " → ".join(map(str, t.get("attempts") or [])),
                "status": t.get("status") or "",
                "run": t.get("part") or "",
            }
            for _, t in sorted(tasks.items())
        ]
        sections.append(Section(f"Fleet {name}", notes, frame_table(pd.DataFrame(rows))))
    return sections


def failed_fleet_part(fp: dict[str, Any]) -> bool:
    """Whether a run is a fleet group that was not timed (its error rows stand in for
    it, and the fleet section says why)."""
    meta = fp.get("fleet") if isinstance(fp.get("fleet"), dict) else {}
    task = meta.get("task") if isinstance(meta.get("task"), dict) else {}
    return task.get("status") == "failed"
