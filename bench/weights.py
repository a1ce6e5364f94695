"""The framework-neutral weight file: an ``.npz`` of canonical names and layouts.

Every adapter converts to and from this one format (see ``models/spec.py`` for the
layouts), so any framework can load weights that any other trained. The file holds every
tensor of the spec: the trainable weights and the non-trainable state (batch
normalisation's running statistics), both checked alike. Loading checks the file
against the spec and names the file and the mismatch when they differ.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bench.atomic import atomic_path
from models.spec import ModelSpec

FORMAT = "xfbench-weights/1"


def rebuild_hint(path: Path) -> str:
    """The command that replaces a damaged weight file: the zoo rebuilds any build
    whose weights do not load (``<artifacts>/<framework>/<model>/weights.npz``)."""
    framework, model = path.parent.parent.name, path.parent.name
    if path.name == "weights.npz" and framework and model:
        return f"`xfbench zoo -f {framework} -m {model}` rebuilds it"
    return "`xfbench zoo` rebuilds it"


class WeightFileError(ValueError):
    """A weight file that cannot be used for the spec it was loaded for."""


def check_weights(spec: ModelSpec, weights: Mapping[str, np.ndarray], source: str) -> None:
    """Raise :class:`WeightFileError` unless ``weights`` has exactly the spec's tensors
    (state included), each of its shape and finite; a running variance must also be
    non-negative (inference takes its square root)."""
    expected = spec.param_shapes
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing tensors {missing}")
    if extra:
        problems.append(f"unexpected tensors {extra}")
    for name in sorted(set(expected) & set(weights)):
        got = tuple(np.shape(weights[name]))
        if got != expected[name]:
            problems.append(f"{name} has shape {got}, the spec says {expected[name]}")
        elif not np.all(np.isfinite(weights[name])):
            problems.append(f"{name} holds NaN or infinite values")
        elif name.endswith(".moving_variance") and np.any(np.asarray(weights[name]) < 0):
            problems.append(f"{name} holds negative values (a variance)")
    if problems:
        raise WeightFileError(
            f"{source}: does not match the {spec.name!r} spec: " + "; ".join(problems)
        )


def save_weights(
    path: Path, spec: ModelSpec, weights: Mapping[str, np.ndarray], meta: Mapping | None = None
) -> None:
    """Write ``weights`` to ``path`` (written beside, then renamed: never half a file)."""
    check_weights(spec, weights, str(path))
    header = {"format": FORMAT, "model": spec.name, **(meta or {})}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            __xfbench__=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
            **{k: np.asarray(v, dtype=np.float32) for k, v in weights.items()},
        )


def load_weights(path: Path, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Read and validate a neutral weight file for ``spec``."""
    path = Path(path)
    if not path.is_file():
        raise WeightFileError(f"{path}: no such weight file")
    try:
        # Our own handle: np.load leaks its file when the zip directory is damaged.
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise WeightFileError(
            f"{path}: not a readable .npz weight file ({exc}); {rebuild_hint(path)}"
        ) from exc
    header_raw = arrays.pop("__xfbench__", None)
    if header_raw is None:
        raise WeightFileError(f"{path}: not an xfbench weight file (no header)")
    try:
        header = json.loads(header_raw.tobytes().decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError both are
        raise WeightFileError(
            f"{path}: damaged header, not UTF-8 JSON ({exc}); {rebuild_hint(path)}"
        ) from exc
    if not isinstance(header, dict):
        raise WeightFileError(
            f"{path}: damaged header, a JSON {type(header).__name__} where an object "
            f"belongs; {rebuild_hint(path)}"
        )
    if header.get("format") != FORMAT:
        raise WeightFileError(f"{path}: format {header.get('format')!r}, expected {FORMAT!r}")
    if header.get("model") != spec.name:
        raise WeightFileError(
            f"{path}: holds weights of model {header.get('model')!r}, not {spec.name!r}"
        )
    check_weights(spec, arrays, str(path))
    return {k: v.astype(np.float32) for k, v in arrays.items()}
