"""The adapter contract: what a framework must provide to take part in xfbench.

An adapter is a small class that turns a framework-neutral :class:`~models.spec.ModelSpec`
into a native model and drives it: load and save neutral weights, predict, take a
training step, export to ONNX. Everything crosses the boundary as numpy arrays, so the
pipeline, the benchmark runner and the conformance tests never touch a framework
object themselves. Adapters import their framework inside methods, never at module
level, so that importing the harness imports no framework.

A minimal adapter (see ``docs/adding-an-adapter.md``)::

    class MyAdapter(Adapter):
        name = "myfw"
        package = "myfw"
        exporter = "myfw.onnx"

        def build(self, spec, device="cpu"): ...
        def get_weights(self, model): ...
        def set_weights(self, model, weights): ...
        def infer(self, model, x): ...
        def make_train_step(self, model, train, mode=None): ...
        def export_onnx(self, model, spec, path): ...
"""

from __future__ import annotations

import importlib.metadata
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from models.spec import MODEL_NAMES, ModelSpec, TrainSpec

TrainStep = Callable[[np.ndarray, np.ndarray], float]

#: The form of :attr:`Adapter.color`: ``#rrggbb`` (a colour matplotlib takes, checked
#: without importing matplotlib).
COLOR_PATTERN = re.compile(r"#[0-9A-Fa-f]{6}")
#: The report's colour for ONNX Runtime where it is drawn as a framework of its own; it
#: is no adapter's, so no adapter may declare it.
ONNXRUNTIME_COLOR = "#56B4E9"


def array_device(y: Any) -> str:
    """``"cpu"`` for a numpy array (or a scalar); anything else is not an array this
    helper can place, and saying ``cpu`` for it would be a guess."""
    if isinstance(y, np.ndarray | np.generic | float | int):
        return "cpu"
    raise TypeError(f"cannot tell where a {type(y).__name__} lives; not a numpy array")


class UnsupportedError(RuntimeError):
    """The framework cannot run this here (no GPU build, a build too old for the GPU...).

    Raised by adapters where they can tell; the benchmark records the case as
    ``unsupported`` with this message instead of an error.
    """


class Adapter(ABC):
    """Base class of every framework adapter."""

    #: Registry name, also the CLI's ``--framework`` value and the tox environment.
    name: ClassVar[str]
    #: Import name of the framework, probed to tell whether this interpreter has it.
    package: ClassVar[str]
    #: Human-readable exporter, recorded in manifests and reports.
    exporter: ClassVar[str]
    #: Distributions whose versions are recorded in every manifest, by their canonical
    #: (CPU build's) PyPI names; they enter the build key.
    distributions: ClassVar[tuple[str, ...]] = ("numpy", "onnx", "onnxruntime")
    #: Other distributions that provide a canonical one in another build (``mxnet`` by
    #: ``mxnet-cu112``): read under the canonical name, so that a CPU and a GPU
    #: environment give models the same build key and reuse each other's.
    distribution_aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "onnxruntime": ("onnxruntime-gpu",),
    }
    #: Per device the adapter may run on, the tox environment that runs it, which is
    #: also the name of its ``pyproject.toml`` extra. A device missing here runs in the
    #: CPU environment, where the adapter reports its cases ``unsupported``.
    #: ``tests/test_environments.py`` checks every entry against tox.ini and pyproject.
    environments: ClassVar[Mapping[str, str]] = {}
    #: Models this adapter implements; the conformance kit skips the others with a reason.
    models: ClassVar[tuple[str, ...]] = MODEL_NAMES
    #: What ``infer`` returns: ``"logits"``, or ``"probabilities"`` (their softmax) for a
    #: framework that has no logits to give (scikit-learn's MLPClassifier).
    output: ClassVar[str] = "logits"
    #: Execution modes for inference, named as a user of the framework names them; they
    #: are the ``runtime`` of the benchmark's native cases (``onnxruntime`` is reserved).
    #: The first is the mode :meth:`infer` uses (the zoo's checks and exports).
    modes: ClassVar[tuple[str, ...]] = ("native",)
    #: Modes that have a training step of their own (a subset of :attr:`modes`), the
    #: compiled one included wherever the framework has one.
    train_modes: ClassVar[tuple[str, ...]] = ("native",)
    #: One line per mode for the report's legend: what it runs, and anything a reader
    #: must know (e.g. "deprecated upstream"). Every mode needs one.
    mode_notes: ClassVar[Mapping[str, str]] = {"native": "the framework's only mode"}
    #: The framework's colour in every chart of every report, as ``#rrggbb``; distinct
    #: from the other adapters' and from :data:`ONNXRUNTIME_COLOR`. ``None``: a colour
    #: derived from :attr:`name` (stable, but it may be shared with another framework).
    color: ClassVar[str | None] = None

    # -- capabilities -------------------------------------------------------------------
    def import_framework(self) -> None:
        """Import the framework (the cold start's ``import`` part). Default: ``package``."""
        importlib.import_module(self.package)

    def check_mode(self, mode: str, training: bool = False) -> str:
        """``mode`` if this adapter offers it (for training: in :attr:`train_modes`), else
        ``ValueError`` naming the valid ones."""
        valid = self.train_modes if training else self.modes
        if mode not in valid:
            what = "training modes" if training else "modes"
            raise ValueError(
                f"{self.name} has no {'training ' if training else ''}mode {mode!r}; "
                f"valid {what}: {', '.join(valid)}"
            )
        return mode

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "environments" not in cls.__dict__ and "name" in cls.__dict__:
            cls.environments = {"cpu": cls.name}

    def versions(self) -> dict[str, str]:
        """Installed versions of the framework and its ONNX tool chain, by canonical
        name and without a local build label (``2.13.0+cpu`` and PyPI's CUDA build
        ``2.13.0`` are both ``2.13.0``): the build key's part. :meth:`builds` says which
        build it is."""
        return {dist: version.split("+")[0] for dist, (_, version) in self._installed().items()}

    def builds(self) -> dict[str, str]:
        """The distributions really installed, ``name version`` in full (``torch
        2.13.0+cpu``, ``onnxruntime-gpu 1.31.1``): recorded, outside the build key."""
        return {
            dist: f"{actual} {version}" if actual not in ("", dist) else version
            for dist, (actual, version) in self._installed().items()
        }

    def _installed(self) -> dict[str, tuple[str, str]]:
        out = {}
        for dist in self.distributions:
            out[dist] = ("", "not installed")
            for actual in (dist, *self.distribution_aliases.get(dist, ())):
                try:
                    out[dist] = (actual, importlib.metadata.version(actual))
                    break
                except importlib.metadata.PackageNotFoundError:
                    continue
        return out

    def devices(self) -> list[str]:
        """Devices this build of the framework can use on this machine (``"cpu"`` first)."""
        return ["cpu"]

    def gpu_settings(self) -> dict[str, Any]:
        """The process-wide settings a GPU run uses (strict float32, autotuning, memory
        growth...), applied (idempotently) and read back from the framework: recorded
        with every GPU case. Called only after a model was built on the GPU."""
        return {}

    def reset_peak_device_memory(self, model: Any) -> None:  # noqa: B027 - optional hook
        """Start a new peak for :meth:`peak_device_memory` (GPU only)."""

    def peak_device_memory(self, model: Any) -> int | None:
        """Peak bytes the framework allocated on the model's GPU since the last reset;
        ``None`` on the CPU or where the framework keeps no such count."""
        return None

    def gemm(self, n: int, device: str = "cpu") -> Callable[[], Any] | None:
        """A callable multiplying two resident ``n x n`` float32 matrices with the
        framework's own kernel and waiting for the result: the run's measure of the
        machine's float32 peak. ``None`` where the adapter offers none.

        The operands are ``rng.rand(n, n)`` twice from ``np.random.RandomState(0)``, cast
        to float32, so the conformance kit can check the product."""
        return None

    def set_threads(self, n: int) -> None:  # noqa: B027 - optional hook
        """Fix the intra-op thread count.

        Called in a fresh worker process before the framework runs its first op (the
        worker also sets ``OMP_NUM_THREADS`` before any import). Where the framework
        can no longer change its pools, raise ``RuntimeError``: a silently ignored
        setting would make the recorded thread count a lie.
        """

    # -- models and weights -------------------------------------------------------------
    @abstractmethod
    def build(self, spec: ModelSpec, device: str = "cpu") -> Any:
        """A native model implementing ``spec`` on ``device`` (weights arbitrary).

        The model carries its spec as ``model.xfbench_spec``, so the weight methods
        can map canonical names without being passed the spec again. An unavailable
        device raises ``ValueError`` naming the available ones.
        """

    @abstractmethod
    def get_weights(self, model: Any) -> dict[str, np.ndarray]:
        """The model's weights in canonical names and layouts (float32)."""

    @abstractmethod
    def set_weights(self, model: Any, weights: Mapping[str, np.ndarray]) -> None:
        """Load canonical weights (already validated against the spec) into ``model``."""

    @abstractmethod
    def param_count(self, model: Any) -> int:
        """Trainable parameters, counted by the framework itself."""

    # -- running ------------------------------------------------------------------------
    def to_device(self, model: Any, x: np.ndarray) -> Any:
        """Move a numpy batch to where ``model`` lives, in the framework's tensor type."""
        return x

    @abstractmethod
    def infer(self, model: Any, x: Any) -> Any:
        """Forward pass in the framework's best inference mode, returning native logits."""

    def to_numpy(self, y: Any) -> np.ndarray:
        """Bring a native result back to the host (this also waits for it)."""
        return np.asarray(y)

    @abstractmethod
    def output_device(self, y: Any) -> str:
        """Where a native result of :meth:`forward` lives, read from the result itself:
        ``"cpu"``, ``"cuda"``, or the framework's own name for any other device (never
        a guess). The benchmark fails a case whose result is not on its device."""

    def forward(self, model: Any, mode: str) -> Callable[[Any], Any]:
        """A function running ``model`` in ``mode`` on a device batch (from
        :meth:`to_device`) and returning the native result, with nothing else in it: the
        benchmark times ``wait(forward(x))`` exactly.

        A compiling mode may compile on the first call with each input shape; the
        benchmark times that first call as the ``compile`` phase, apart from the steady
        state. The default serves the adapter's one mode through :meth:`infer`.
        """
        self.check_mode(mode)
        return lambda x: self.infer(model, x)

    def wait(self, y: Any) -> None:  # noqa: B027 - optional hook
        """Return once ``y``, a result of :meth:`forward`, is computed.

        Only where the framework returns before its work is done (GPU kernels, JAX's
        asynchronous dispatch, MXNet's engine): where results are complete on return it
        must stay a no-op, or every timed call would pay for a synchronisation its peers
        do not.
        """

    def predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        """Logits for a numpy batch, as float32 numpy."""
        return self.to_numpy(self.infer(model, self.to_device(model, x))).astype(np.float32)

    @abstractmethod
    def make_train_step(self, model: Any, train: TrainSpec, mode: str | None = None) -> TrainStep:
        """A function ``(x, y) -> loss`` doing forward, softmax cross-entropy, backward
        and one optimizer update with ``train``'s optimizer and learning rate, in training
        mode ``mode`` (default: the first of :attr:`train_modes`). ``x`` and ``y`` are
        numpy; the loss comes back as a Python float (which waits for the device).

        For the ``gan`` (:func:`bench.data.train_batch`) ``x`` is a batch of real images
        and ``y`` as many latent vectors, and a step is DCGAN's: the generator makes
        ``fake = G(y)`` once, in training mode (batch normalisation by the batch's
        statistics; its running statistics move once per step); the discriminator takes
        one Adam step on ``BCE(D(x), 1) + BCE(D(fake), 0)`` (mean binary cross-entropy of
        its logits; no gradient into G); then the generator one Adam step on
        ``BCE(D(fake), 1)`` through the *updated* discriminator (the non-saturating
        loss; D unchanged). Each network has an Adam of its own with ``train``'s
        constants. The step returns the discriminator's loss, computed before either
        update (the value the conformance kit checks against the numpy reference)."""

    def output_name(self, spec: ModelSpec) -> str:
        """The name of the ONNX export's output: :attr:`output` (``logits``,
        ``probabilities``), or ``images`` for a generator."""
        return "images" if spec.arch == "gan" else self.output

    def discriminate(self, model: Any, images: np.ndarray) -> np.ndarray:
        """The GAN's discriminator logits ``(N, 1)`` (float32 numpy) for ``(N, 1, 28,
        28)`` images: needed of every adapter that declares ``gan`` in :attr:`models`,
        so the kit can prove its discriminator equal to the reference too."""
        raise NotImplementedError(f"{self.name} has no GAN discriminator to run")

    # -- export -------------------------------------------------------------------------
    @abstractmethod
    def export_onnx(self, model: Any, spec: ModelSpec, path: Path) -> dict[str, Any] | None:
        """Write ``model`` to ``path`` as ONNX with a dynamic batch axis (axis 0).

        May return notes on what the export did beyond the exporter's own output
        (opset held back, initializers removed from the inputs, names changed); they
        are recorded in the manifest.
        """
