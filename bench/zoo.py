"""The model-zoo stage: train, save neutral weights, export ONNX, verify parity.

Runs inside one framework's environment (the CLI starts it there, one process per
framework). For every requested model it writes, under ``<artifacts>/<framework>/<model>/``:

* ``weights.npz``  the trained weights in the neutral format (``bench/weights.py``);
* ``model.onnx``   the framework's own ONNX export, dynamic batch axis;
* ``manifest.json``  versions, accuracy, training history, export diagnostics, parity.

A build is done in a staging folder and moved into place only when every check
passed, so a failed or interrupted run never deletes or corrupts what was built
before; every file is written atomically (``bench/atomic.py``). A build whose inputs
(spec, data, framework versions) are unchanged is reused only after it is verified:
the manifest is a complete JSON object, the weights load, the ONNX file passes the
full checker, and both files still have the size and SHA-256 recorded at build time.
Anything else is rebuilt, and the reason is recorded (``rebuild_reason``); ``force``
rebuilds regardless. The replaced build is kept as ``<model>.previous``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench import quality
from bench.adapters.base import Adapter
from bench.atomic import atomic_path, atomic_write_text, is_temp, remove_leftovers
from bench.data import as_model_input, batches, fingerprint, load_digits, train_batch
from bench.weights import WeightFileError, load_weights, save_weights
from models import reference
from models.spec import ModelSpec, get_spec

MANIFEST_SCHEMA = "xfbench-manifest/2"
PARITY_BATCHES = (1, 7)
ONNX_PARITY_TOL = 1e-4
#: Each framework within this of the float64 reference puts any two frameworks within
#: 1e-4 of each other (the triangle inequality), with no need to share a process.
REFERENCE_TOL = 5e-5
#: Seed of the shared weights whose outputs are recorded for the cross-framework check.
EQUIVALENCE_SEED = 1234
#: Test samples the checks of an untrained size use (its numpy reference costs up to
#: seconds per sample at the largest sizes); the reference sizes use all 359.
UNTRAINED_CHECK_SAMPLES = 64
#: The files of a build besides its manifest, whose sizes and hashes the manifest records.
BUILD_FILES = ("weights.npz", "model.onnx")


class BuildError(RuntimeError):
    """A build that ran but failed one of its checks."""


class EquivalenceFileError(ValueError):
    """A recorded cross-framework output that cannot be read."""


def build_key(adapter: Adapter, spec: ModelSpec, data_hash: str) -> str:
    """Hash of everything a build depends on; a change makes old artifacts stale.

    The spec enters as :meth:`ModelSpec.key_dict` (its ``asdict``, less weight-tensor
    fields at their defaults), so a field added to the specs with a default keeps the
    keys, hence the builds, of the models that do not use it."""
    blob = json.dumps(
        {
            "spec": spec.key_dict(),
            "data": data_hash,
            "versions": adapter.versions(),
            "exporter": adapter.exporter,
            "schema": MANIFEST_SCHEMA,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def model_dir(artifacts: Path, framework: str, model: str) -> Path:
    return artifacts / framework / model


def file_record(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of a build file, as its manifest records them."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _manifest(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(manifest, None)`` if ``folder`` holds a complete one and its files exist,
    else ``(None, why not)``, naming the file."""
    path = folder / "manifest.json"
    if not path.is_file():
        return None, f"{path}: missing"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError too
        return None, f"{path}: damaged, not readable JSON ({exc})"
    if not isinstance(manifest, dict):
        return None, f"{path}: damaged, a JSON {type(manifest).__name__} and not an object"
    if manifest.get("schema") != MANIFEST_SCHEMA:
        return None, f"{path}: schema {manifest.get('schema')!r}, not {MANIFEST_SCHEMA!r}"
    if manifest.get("status") != "ok" or not isinstance(manifest.get("build_key"), str):
        return None, f"{path}: incomplete (no status 'ok' or no build key)"
    for name in BUILD_FILES:
        if not (folder / name).is_file():
            return None, f"{folder / name}: missing"
    return manifest, None


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest in ``folder`` if it is complete and its files exist, else None."""
    return _manifest(folder)[0]


def stale_reason(adapter: Adapter, spec: ModelSpec, folder: Path, data_hash: str) -> str | None:
    """None if the build in ``folder`` is current and intact, else why it must be rebuilt.

    Damage is a reason, never a crash: a manifest that is not a complete JSON object,
    weights that do not load (:class:`WeightFileError`), an ONNX file that fails the
    full check the build ran (:func:`check_onnx`), or a file whose size or SHA-256
    differs from what the manifest recorded (manifests older than those records skip
    that last check).
    """
    manifest, problem = _manifest(folder)
    if manifest is None:
        return problem
    if manifest["build_key"] != build_key(adapter, spec, data_hash):
        return "its inputs changed (spec, data, framework versions or exporter)"
    try:
        load_weights(folder / "weights.npz", spec)
    except WeightFileError as exc:
        return str(exc)
    onnx_path = folder / "model.onnx"
    try:
        check_onnx(onnx_path)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, ...: all damage
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        return f"{onnx_path}: damaged, fails the ONNX check ({type(exc).__name__}: {detail})"
    files = manifest.get("files")
    for name in BUILD_FILES:
        recorded = files.get(name) if isinstance(files, dict) else None
        if recorded is not None and recorded != file_record(folder / name):
            return f"{folder / name}: changed since it was built (size or SHA-256 differs)"
    return None


def is_current(adapter: Adapter, spec: ModelSpec, folder: Path, data_hash: str) -> bool:
    return stale_reason(adapter, spec, folder, data_hash) is None


def train(
    adapter: Adapter,
    model: Any,
    spec: ModelSpec,
    *,
    progress: bool = True,
    judge: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Train ``model`` from the spec's initial weights; return the history.

    Time to accuracy counts training time only (evaluation after each epoch is not
    timed), up to the end of the first epoch whose test accuracy reaches the target.
    The GAN has no accuracy: after each epoch its generator is scored by ``judge``, the
    weights of a trained CNN (:mod:`bench.quality`), and its time to target is to the
    first epoch whose score meets the quality target.
    """
    from tqdm.auto import tqdm

    data = load_digits()
    gan = spec.arch == "gan"
    if gan and judge is None:
        raise ValueError("training the GAN needs a judge: the weights of a trained CNN")
    x_train = data.x_train if gan else as_model_input(spec, data.x_train)
    x_test = as_model_input(spec, data.x_test)
    cfg = spec.train
    adapter.set_weights(model, spec.init_weights(cfg.seed))
    step = adapter.make_train_step(model, cfg)
    history: list[dict[str, float]] = []
    trained_s = 0.0
    time_to_target = None
    n_batches = -(-len(x_train) // cfg.batch_size)
    bar = tqdm(
        total=cfg.epochs * n_batches,
        desc=f"{adapter.name}/{spec.name}",
        unit="step",
        disable=not progress,
        leave=True,
        dynamic_ncols=True,
    )
    with bar:
        for epoch in range(cfg.epochs):
            losses = []
            t0 = time.perf_counter()
            for i, idx in enumerate(batches(len(x_train), cfg.batch_size, epoch, cfg.seed)):
                if gan:  # new noise every step, the same in every framework
                    seed = (cfg.seed * 1000 + epoch) * 1000 + i + 1
                    losses.append(step(*train_batch(spec, x_train[idx], data.y_train[idx], seed)))
                else:
                    losses.append(step(x_train[idx], data.y_train[idx]))
                bar.update()
            epoch_s = time.perf_counter() - t0
            trained_s += epoch_s
            entry: dict[str, Any] = {"epoch": epoch + 1, "loss": float(np.mean(losses))}
            if gan:
                assert judge is not None
                verdict = quality.score(adapter.predict(model, quality.judged_latent(spec)), judge)
                reached = quality.meets_target(verdict)
                entry["quality"] = verdict
                shown = f"conf={verdict['confidence']:.3f} classes={verdict['classes']}"
            else:
                acc = accuracy(adapter, model, x_test, data.y_test)
                reached = acc >= cfg.target_accuracy
                entry["test_accuracy"] = acc
                shown = f"acc={acc:.3f}"
            if time_to_target is None and reached:
                time_to_target = trained_s
            history.append({**entry, "seconds": epoch_s})
            bar.set_postfix_str(f"loss={np.mean(losses):.4f} {shown}")
    out = {
        "history": history,
        "test_accuracy": history[-1].get("test_accuracy"),
        "train_seconds": trained_s,
        "time_to_accuracy_s": time_to_target,
    }
    if gan:
        out["quality"] = {**history[-1]["quality"], "target": quality.target()}
        out["meets_target"] = quality.meets_target(history[-1]["quality"])
    return out


def accuracy(adapter: Adapter, model: Any, x: np.ndarray, y: np.ndarray) -> float:
    return float((adapter.predict(model, x).argmax(axis=1) == y).mean())


def _graph_inputs(graph: Any) -> list[Any]:
    """The graph's real inputs: those that are not also initializers."""
    initializers = {i.name for i in graph.initializer}
    return [i for i in graph.input if i.name not in initializers]


def check_onnx(path: Path) -> Any:
    """Load an export and run every check a build requires of it (``onnx.checker``'s
    full check, one input and one output, a dynamic batch axis); return the model."""
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    graph = model.graph
    inputs = _graph_inputs(graph)
    if len(inputs) != 1 or len(graph.output) != 1:
        raise BuildError(
            f"{path}: expected one input and one output, got {[i.name for i in inputs]} -> "
            f"{[o.name for o in graph.output]}"
        )
    for value in (inputs[0], graph.output[0]):
        dim0 = value.type.tensor_type.shape.dim[0]
        if dim0.HasField("dim_value"):
            raise BuildError(
                f"{path}: {value.name!r} has a fixed batch axis of "
                f"{dim0.dim_value}; the export must leave axis 0 dynamic"
            )
    return model


def onnx_diagnostics(path: Path) -> dict[str, Any]:
    """Checker verdict, opset, node count, op histogram and the batch axis of an export."""
    from bench.flops import flops_per_sample

    model = check_onnx(path)
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = _graph_inputs(graph)
    return {
        "opset": next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
        "node_count": len(graph.node),
        "op_histogram": dict(sorted(Counter(n.op_type for n in graph.node).items())),
        "initializers_as_inputs": len([i for i in graph.input if i.name in initializers]),
        "input_name": inputs[0].name,
        "output_name": graph.output[0].name,
        "file_bytes": path.stat().st_size,
        "flops_per_sample": flops_per_sample(path),
    }


def onnx_parity(
    adapter: Adapter, model: Any, spec: ModelSpec, path: Path, x: np.ndarray
) -> dict[str, float]:
    """Max |ONNX Runtime (CPU) - native| at each parity batch size and the full set."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    out = {}
    for b in (*PARITY_BATCHES, len(x)):
        diff = np.abs(session.run(None, {name: x[:b]})[0] - adapter.predict(model, x[:b]))
        out[str(b)] = float(diff.max())
    return out


def build_model(
    adapter: Adapter,
    spec: ModelSpec,
    artifacts: Path,
    *,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Build one framework x model, or reuse a current build. Returns its manifest."""
    data = load_digits()
    data_hash = fingerprint(data)
    final = model_dir(artifacts, adapter.name, spec.name)
    reason = "--force" if force else stale_reason(adapter, spec, final, data_hash)
    if reason is None:
        manifest = read_manifest(final)
        assert manifest is not None
        return {**manifest, "reused": True}
    if not final.exists():
        reason = None  # a first build: nothing was replaced
    else:
        print(f"xfbench: rebuilding {adapter.name}/{spec.name}: {reason}", file=sys.stderr)

    judge = None
    if spec.arch == "gan":
        judge = _judge(adapter, artifacts, progress)
    remove_leftovers(final.parent)  # builds of processes killed outright
    staging = final.with_name(f"{spec.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        manifest = _build_into(adapter, spec, staging, data_hash, progress, reason, judge)
        _publish(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {**manifest, "reused": False}


def _judge(adapter: Adapter, artifacts: Path, progress: bool) -> dict[str, Any]:
    """The weights that judge the GAN (:mod:`bench.quality`): this framework's trained
    CNN, built (or its current build reused) first, with its build key."""
    spec = get_spec(quality.JUDGE)
    manifest = build_model(adapter, spec, artifacts, progress=progress)
    weights = load_weights(model_dir(artifacts, adapter.name, spec.name) / "weights.npz", spec)
    return {"weights": weights, "build_key": manifest["build_key"], "model": spec.name}


def _build_into(
    adapter: Adapter,
    spec: ModelSpec,
    folder: Path,
    data_hash: str,
    progress: bool,
    rebuild_reason: str | None = None,
    judge: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    data = load_digits()
    x_test = as_model_input(spec, data.x_test)
    model = adapter.build(spec)
    params = adapter.param_count(model)
    if params != spec.param_count:
        raise BuildError(
            f"{adapter.name}/{spec.name}: {params} trainable parameters, "
            f"the spec says {spec.param_count}"
        )
    started = time.time()
    if spec.trained:
        result = train(adapter, model, spec, progress=progress, judge=judge and judge["weights"])
        if judge is not None:
            result["judge"] = {"model": judge["model"], "build_key": judge["build_key"]}
        if spec.arch == "gan" and not result["meets_target"]:
            q = result["quality"]
            raise BuildError(
                f"{adapter.name}/{spec.name}: the generator's quality (confidence "
                f"{q['confidence']:.3f}, {q['classes']} classes) is below the target "
                f"({quality.TARGET_CONFIDENCE}, {quality.TARGET_CLASSES}); nothing was replaced"
            )
        if spec.arch != "gan" and result["test_accuracy"] < spec.train.target_accuracy:
            raise BuildError(
                f"{adapter.name}/{spec.name}: test accuracy {result['test_accuracy']:.4f} is "
                f"below the target {spec.train.target_accuracy}; nothing was replaced"
            )
    else:
        # A size of the reference model, timed for the scaling report: its initial
        # weights, checked like any build (reference, round trip, ONNX parity, FLOPs).
        adapter.set_weights(model, spec.init_weights(EQUIVALENCE_SEED))
        result = {"trained": False, "history": [], "test_accuracy": None}
        result.update(train_seconds=0.0, time_to_accuracy_s=None)
        # The checks below on fewer samples: the numpy reference of the largest sizes
        # costs seconds per sample.
        x_test = x_test[:UNTRAINED_CHECK_SAMPLES]

    weights = adapter.get_weights(model)
    save_weights(folder / "weights.npz", spec, weights, {"framework": adapter.name})
    # Prove the file round-trips: a fresh model loaded from it predicts the same.
    reloaded = adapter.build(spec)
    adapter.set_weights(reloaded, load_weights(folder / "weights.npz", spec))
    native = adapter.predict(model, x_test)
    roundtrip = float(np.abs(adapter.predict(reloaded, x_test) - native).max())
    ref_diff = float(
        np.abs(reference.outputs(spec, weights, x_test, adapter.output) - native).max()
    )
    if ref_diff > REFERENCE_TOL:
        raise BuildError(
            f"{adapter.name}/{spec.name}: output differs from the numpy "
            f"reference by {ref_diff:.2e} (> {REFERENCE_TOL})"
        )

    onnx_path = folder / "model.onnx"
    # Exported under a temporary name, renamed when the exporter returns: never half a file.
    with atomic_path(onnx_path) as tmp, contextlib.redirect_stdout(io.StringIO()):
        export_notes = adapter.export_onnx(model, spec, tmp) or {}
    diagnostics = onnx_diagnostics(onnx_path)
    if diagnostics["flops_per_sample"] != spec.flops_per_sample:
        raise BuildError(
            f"{adapter.name}/{spec.name}: the ONNX graph computes "
            f"{diagnostics['flops_per_sample']} FLOPs per sample, the spec "
            f"{spec.flops_per_sample} (a layer lost or duplicated by the exporter)"
        )
    parity = onnx_parity(adapter, model, spec, onnx_path, x_test)
    if max(parity.values()) > ONNX_PARITY_TOL:
        raise BuildError(
            f"{adapter.name}/{spec.name}: ONNX Runtime differs from native by "
            f"{parity} (> {ONNX_PARITY_TOL})"
        )

    manifest = {
        "schema": MANIFEST_SCHEMA,
        "status": "ok",
        "framework": adapter.name,
        "model": spec.name,
        "versions": adapter.versions(),
        "builds": adapter.builds(),
        "python": platform.python_version(),
        "build_key": build_key(adapter, spec, data_hash),
        "data_fingerprint": data_hash,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "parameters": params,
        "train": _train_record(spec, result),
        "weights_roundtrip_max_abs_diff": roundtrip,
        "reference_max_abs_diff": ref_diff,
        "onnx": {
            "exporter": adapter.exporter,
            **diagnostics,
            "export_notes": export_notes,
            "parity_max_abs_diff": max(parity.values()),
            "parity_by_batch": parity,
        },
        "files": {name: file_record(folder / name) for name in BUILD_FILES},
        "rebuild_reason": rebuild_reason,
    }
    atomic_write_text(folder / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


def _train_record(spec: ModelSpec, result: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``train``: the spec's hyper-parameters and what training gave. The
    GAN's target is its quality's (``result["quality"]["target"]``): the spec's unused
    ``target_accuracy`` is left out rather than recorded as a target of 0."""
    out = {**asdict(spec.train), **result}
    if spec.arch == "gan":
        del out["target_accuracy"]
    return out


def _publish(staging: Path, final: Path) -> None:
    """Move a finished build into place, keeping the one it replaces as ``.previous``."""
    previous = final.with_name(final.name + ".previous")
    if final.exists():
        shutil.rmtree(previous, ignore_errors=True)
        final.rename(previous)
    staging.rename(final)


def equivalence_outputs(
    adapter: Adapter, spec: ModelSpec, artifacts: Path, frameworks: list[str]
) -> dict[str, Path]:
    """Record this framework's logits on the test set for every shared weight set.

    Sources: the spec's seeded weights (``init``) and each framework's trained
    ``weights.npz`` found under ``artifacts``, labelled ``<framework>@<build key>`` so
    that outputs computed from an older build of the same weights never pair with new
    ones. The orchestrator then compares, for each source, the outputs of every
    framework pairwise (:func:`compare_equivalence`).
    """
    data = load_digits()
    x_test = as_model_input(spec, data.x_test)
    sources = {"init": spec.init_weights(EQUIVALENCE_SEED)}
    if not spec.trained:  # every framework's build holds these same initial weights
        x_test = x_test[:UNTRAINED_CHECK_SAMPLES]
        frameworks = []
    for fw in frameworks:
        manifest = read_manifest(model_dir(artifacts, fw, spec.name))
        if manifest is not None:
            label = f"{fw}@{manifest['build_key'][:8]}"
            sources[label] = load_weights(model_dir(artifacts, fw, spec.name) / "weights.npz", spec)
    out_dir = artifacts / "equivalence" / spec.name
    out_dir.mkdir(parents=True, exist_ok=True)
    model = adapter.build(spec)
    written = {}
    for source, weights in sources.items():
        adapter.set_weights(model, weights)
        path = out_dir / f"{source}.{adapter.name}.{adapter.output_name(spec)}.npy"
        with atomic_path(path) as tmp:
            # One row per sample (a generator's images flattened to their pixels).
            np.save(tmp, adapter.predict(model, x_test).reshape(len(x_test), -1))
        written[source] = path
    return written


def load_equivalence_output(path: Path) -> np.ndarray:
    """One recorded output: a 2-D float array, else :class:`EquivalenceFileError`
    naming the file and the command that records it again."""
    try:
        with open(path, "rb") as fh:
            out = np.load(fh, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        problem = f"not a readable .npy file: {exc}"
    else:
        if isinstance(out, np.ndarray) and out.ndim == 2 and out.dtype.kind == "f":
            return out
        problem = f"holds {type(out).__name__} {getattr(out, 'shape', '')}, not 2-D float outputs"
    raise EquivalenceFileError(_equivalence_damage(path, problem))


def _equivalence_damage(path: Path, problem: str) -> str:
    """``path`` is ``<artifacts>/equivalence/<model>/<source>.<framework>.<kind>.npy``."""
    source, framework = path.name.split(".")[:2]
    frameworks = dict.fromkeys([framework, source.split("@")[0]])
    frameworks.pop("init", None)
    return (
        f"{path}: damaged cross-framework output ({problem}); "
        f"`xfbench zoo -f {','.join(frameworks)} -m {path.parent.name} --equivalence` "
        "records it again, or delete it"
    )


def compare_equivalence(
    artifacts: Path, model: str, problems: list[str] | None = None
) -> list[dict[str, Any]]:
    """Pairwise max |output_a - output_b| between frameworks, per weight source.

    Logits are compared as logits; a framework that outputs probabilities is compared
    with the softmax of the others' logits (``space`` says which). A damaged output
    file raises :class:`EquivalenceFileError`, or, when ``problems`` is a list, is left
    out of the comparison and described there.
    """
    folder = artifacts / "equivalence" / model
    by_source: dict[str, dict[str, tuple[str, np.ndarray]]] = {}
    for path in sorted(folder.glob("*.npy")):
        if is_temp(path):
            continue  # an unfinished write, never read
        parts = path.name[: -len(".npy")].split(".")
        if len(parts) != 3 or parts[2] not in ("logits", "probabilities", "images"):
            continue  # written by an older version of xfbench: not comparable
        source, framework, kind = parts
        try:
            out = load_equivalence_output(path)
        except EquivalenceFileError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
            continue
        by_source.setdefault(source, {})[framework] = (kind, out)
    for source, outputs in by_source.items():
        # Outputs of one source must have one shape (the test set x classes).
        shapes = Counter(out.shape for _, out in outputs.values())
        common = shapes.most_common(1)[0][0]
        for framework, (kind, out) in list(outputs.items()):
            if out.shape != common:
                path = folder / f"{source}.{framework}.{kind}.npy"
                message = _equivalence_damage(
                    path, f"shape {out.shape}, the other frameworks' outputs have {common}"
                )
                if problems is None:
                    raise EquivalenceFileError(message)
                problems.append(message)
                del outputs[framework]
    rows = []
    for source, outputs in sorted(by_source.items()):
        names = sorted(outputs)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                (kind_a, out_a), (kind_b, out_b) = outputs[a], outputs[b]
                space = kind_a if kind_a == kind_b else "probabilities"
                if kind_a != kind_b:
                    out_a = reference.softmax(out_a) if kind_a == "logits" else out_a
                    out_b = reference.softmax(out_b) if kind_b == "logits" else out_b
                diff = float(np.abs(out_a.astype(np.float64) - out_b).max())
                rows.append(
                    {
                        "model": model,
                        "weights": source,
                        "a": a,
                        "b": b,
                        "space": space,
                        "max_abs_diff": diff,
                    }
                )
    return rows
