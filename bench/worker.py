"""The worker side: runs inside one framework's environment, started by the CLI.

The orchestrating process never imports a framework; it starts this module with the
framework environment's interpreter and reads back a JSON result file, so a worker
that crashes loses only its own results (pyperf's manager/worker split).

    python -m bench.worker zoo --framework torch --model cnn --artifacts artifacts \
        --result-file /tmp/r.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path


def _configure_threads(threads: int | None) -> None:
    from bench.threads import thread_env

    if threads:  # before the framework loads: its pools read these once
        os.environ.update(thread_env(threads))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("stage", choices=["zoo", "equivalence"])
    parser.add_argument("--framework", required=True)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--result-file", type=Path, required=True)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--peers", default="", help="frameworks whose weights to cross-load")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    from bench.lifeline import watch_parent

    watch_parent()  # a killed zoo must not leave this worker to publish a build
    _configure_threads(args.threads)
    from bench.adapters import get_adapter
    from models.spec import get_spec

    adapter = get_adapter(args.framework)
    if args.threads:
        adapter.set_threads(args.threads)
    results = []
    for name in args.model:
        spec = get_spec(name)
        try:
            if args.stage == "zoo":
                from bench.zoo import build_model

                manifest = build_model(
                    adapter, spec, args.artifacts, force=args.force, progress=not args.no_progress
                )
                results.append(
                    {"framework": adapter.name, "model": name, "status": "ok", "manifest": manifest}
                )
            else:
                from bench.zoo import equivalence_outputs

                written = equivalence_outputs(
                    adapter, spec, args.artifacts, [p for p in args.peers.split(",") if p]
                )
                results.append(
                    {
                        "framework": adapter.name,
                        "model": name,
                        "status": "ok",
                        "outputs": {k: str(v) for k, v in written.items()},
                    }
                )
        except Exception as exc:  # one model's failure must not lose the others
            traceback.print_exc()
            results.append(
                {
                    "framework": adapter.name,
                    "model": name,
                    "status": "error",
                    "reason": f"{type(exc).__name__}: {exc}",
                }
            )
        # Written after every model, so a later crash keeps what was finished.
        args.result_file.write_text(json.dumps(results, indent=2))
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C reaches the worker too: the orchestrator reports it
        sys.exit(130)
