"""Command line: ``xfbench <command>`` (or ``python -m bench <command>``).

    xfbench list                              frameworks, models, where each is installed
    xfbench zoo                               train + export + verify everything
    xfbench zoo -f torch -m cnn               one framework, one model
    xfbench zoo --force                       rebuild even where artifacts are current

Names are checked before any environment is created or any model trained. Each
framework's work runs in a worker process with that framework's own interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.adapters import (
    FrameworkNotInstalledError,
    UnknownFrameworkError,
    check_framework,
    framework_names,
    is_installed,
)
from models.spec import MODEL_NAMES

DEFAULT_ARTIFACTS = Path(os.environ.get("XFBENCH_ARTIFACTS", "artifacts"))


class UsageError(ValueError):
    """Bad input from the command line: reported in one line, exit status 2."""


def _split(values: list[str] | None) -> list[str]:
    """``-f torch -f mxnet`` and ``-f torch,mxnet`` both work."""
    return [v for value in values or [] for v in value.split(",") if v]


def resolve_selection(
    frameworks: list[str] | None, models: list[str] | None
) -> tuple[list[str], list[str]]:
    """Validate names; empty means all. Errors list the valid values."""
    fws = _split(frameworks) or list(framework_names())
    for fw in fws:
        try:
            check_framework(fw)
        except UnknownFrameworkError as exc:
            raise UsageError(str(exc)) from None
    mods = _split(models) or list(MODEL_NAMES)
    for m in mods:
        if m not in MODEL_NAMES:
            raise UsageError(f"unknown model {m!r}; valid models: {', '.join(MODEL_NAMES)}")
    return list(dict.fromkeys(fws)), list(dict.fromkeys(mods))


def run_worker(
    framework: str, stage: str, models: list[str], artifacts: Path, extra: list[str]
) -> list[dict[str, Any]]:
    """Run one framework's worker; a crash becomes error rows, never an exception."""
    from bench.envs import interpreter_for

    python = interpreter_for(framework)
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        cmd = [
            str(python),
            "-m",
            "bench.worker",
            stage,
            "--framework",
            framework,
            "--artifacts",
            str(artifacts),
            "--result-file",
            str(result_file),
            *[a for m in models for a in ("--model", m)],
            *extra,
        ]
        proc = subprocess.run(cmd, check=False)
        done = json.loads(result_file.read_text()) if result_file.exists() else []
    finished = {r["model"] for r in done}
    lost = [m for m in models if m not in finished]
    if lost:
        reason = f"worker exited with status {proc.returncode} before finishing"
        done += [
            {"framework": framework, "model": m, "status": "error", "reason": reason} for m in lost
        ]
    return done


def cmd_zoo(args: argparse.Namespace) -> int:
    frameworks, models = resolve_selection(args.framework, args.model)
    artifacts = args.artifacts.resolve()
    extra = ["--force"] if args.force else []
    if args.threads:
        extra += ["--threads", str(args.threads)]
    if args.no_progress:
        extra.append("--no-progress")
    results: list[dict[str, Any]] = []
    for fw in frameworks:
        try:
            results += run_worker(fw, "zoo", models, artifacts, extra)
        except (FrameworkNotInstalledError, subprocess.CalledProcessError) as exc:
            results += [
                {"framework": fw, "model": m, "status": "error", "reason": str(exc)} for m in models
            ]
    built = sorted({r["framework"] for r in results if r["status"] == "ok"})
    equivalence = []
    if len(built) > 1 or args.equivalence:
        for fw in built:
            run_worker(fw, "equivalence", models, artifacts, ["--peers", ",".join(built)])
        from bench.zoo import compare_equivalence

        equivalence = [row for m in models for row in compare_equivalence(artifacts, m)]
        (artifacts / "equivalence.json").write_text(json.dumps(equivalence, indent=2) + "\n")
    print(format_summary(results, equivalence, artifacts))
    return 0 if all(r["status"] == "ok" for r in results) else 1


def format_summary(
    results: list[dict[str, Any]], equivalence: list[dict[str, Any]], artifacts: Path
) -> str:
    header = (
        f"{'framework':<11}{'model':<6}{'params':>8}{'acc':>7}{'t→acc s':>9}"
        f"{'opset':>6}{'nodes':>6}{'onnx Δ':>10}{'xfw Δ':>10}  status"
    )
    lines = ["", header, "-" * len(header)]
    for r in results:
        if r["status"] != "ok":
            lines.append(f"{r['framework']:<11}{r['model']:<6}  ERROR: {r['reason']}")
            continue
        m = r["manifest"]
        xfw = [
            e["max_abs_diff"]
            for e in equivalence
            if e["model"] == m["model"] and m["framework"] in (e["a"], e["b"])
        ]
        tta = m["train"]["time_to_accuracy_s"]
        lines.append(
            f"{m['framework']:<11}{m['model']:<6}{m['parameters']:>8}"
            f"{m['train']['test_accuracy']:>7.3f}{tta if tta is None else f'{tta:.1f}':>9}"
            f"{m['onnx']['opset']:>6}{m['onnx']['node_count']:>6}"
            f"{m['onnx']['parity_max_abs_diff']:>10.1e}"
            f"{(f'{max(xfw):.1e}' if xfw else '-'):>10}  "
            + ("reused" if r["manifest"].get("reused") else "built")
        )
    lines.append(f"\nartifacts: {artifacts}")
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    from bench.adapters import _entry_points

    for fw in framework_names():
        cls = _entry_points()[fw].load()
        where = "installed here" if is_installed(fw) else "needs its environment"
        print(f"{fw:<12} models: {','.join(cls.models):<15} exporter: {cls.exporter}  ({where})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xfbench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    zoo = sub.add_parser("zoo", help="train, export to ONNX and verify models")
    zoo.add_argument(
        "-f",
        "--framework",
        action="append",
        help="framework(s) to build, repeatable or comma-separated (default all)",
    )
    zoo.add_argument(
        "-m",
        "--model",
        action="append",
        help=f"model(s) to build: {', '.join(MODEL_NAMES)} (default all)",
    )
    zoo.add_argument(
        "--force",
        action="store_true",
        help="retrain even where current artifacts exist (the replaced build "
        "is kept as <model>.previous)",
    )
    zoo.add_argument(
        "--artifacts",
        type=Path,
        default=DEFAULT_ARTIFACTS,
        help="artifact folder (default: ./artifacts, or $XFBENCH_ARTIFACTS)",
    )
    zoo.add_argument("--threads", type=int, default=None, help="intra-op threads")
    zoo.add_argument(
        "--equivalence",
        action="store_true",
        help="record cross-framework outputs even for a single framework",
    )
    zoo.add_argument("--no-progress", action="store_true", help="no progress bars")
    zoo.set_defaults(func=cmd_zoo)

    lst = sub.add_parser("list", help="registered frameworks and models")
    lst.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"xfbench: error: {exc}", file=sys.stderr)
        return 2
