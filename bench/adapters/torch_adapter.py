"""PyTorch adapter: eager modules under ``inference_mode``, exported by ``torch.onnx``."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bench.adapters.base import Adapter, TrainStep
from models.spec import ModelSpec, TrainSpec


class TorchAdapter(Adapter):
    name = "torch"
    package = "torch"
    # The dynamo-based exporter is torch's maintained path (the TorchScript one is
    # deprecated); it needs onnxscript.
    exporter = "torch.onnx (dynamo)"
    distributions = ("torch", "onnxscript", "numpy", "onnx", "onnxruntime")
    opset = 18

    def devices(self) -> list[str]:
        import torch

        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]

    def set_threads(self, n: int) -> None:
        import torch

        torch.set_num_threads(n)
        # Inter-op parallelism must be set before any parallel work starts; torch raises
        # if it already has, which is what we want (a silently ignored setting would
        # make the recorded thread count a lie).
        if torch.get_num_interop_threads() != 1:
            torch.set_num_interop_threads(1)

    def _device(self, device: str) -> Any:
        import torch

        if device not in self.devices():
            raise ValueError(
                f"torch cannot use device {device!r} here; available: {self.devices()}"
            )
        return torch.device(device)

    def build(self, spec: ModelSpec, device: str = "cpu") -> Any:
        from models.torch_models import build_model

        return build_model(spec).to(self._device(device)).eval()

    def param_count(self, model: Any) -> int:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    def get_weights(self, model: Any) -> dict[str, np.ndarray]:
        from models.torch_models import from_state_dict

        return from_state_dict(model.xfbench_spec, model.state_dict())

    def set_weights(self, model: Any, weights: Mapping[str, np.ndarray]) -> None:
        from models.torch_models import to_state_dict

        model.load_state_dict(to_state_dict(model.xfbench_spec, model, weights), strict=True)

    def to_device(self, model: Any, x: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(np.ascontiguousarray(x)).to(next(model.parameters()).device)

    def infer(self, model: Any, x: Any) -> Any:
        import torch

        if model.training:
            model.eval()
        with torch.inference_mode():
            return model(x)

    def to_numpy(self, y: Any) -> np.ndarray:
        return y.detach().cpu().numpy()

    def synchronize(self, model: Any) -> None:
        import torch

        device = next(model.parameters()).device
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def gemm(self, n: int, device: str = "cpu") -> Any:
        import torch

        dev = self._device(device)
        rng = np.random.RandomState(0)  # the same operands in every adapter
        a = torch.from_numpy(rng.rand(n, n).astype(np.float32)).to(dev)
        b = torch.from_numpy(rng.rand(n, n).astype(np.float32)).to(dev)

        def run() -> Any:
            with torch.inference_mode():
                c = torch.mm(a, b)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            return c

        return run

    def make_train_step(self, model: Any, train: TrainSpec) -> TrainStep:
        import torch

        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(
            params, lr=train.learning_rate, betas=(train.beta1, train.beta2), eps=train.epsilon
        )
        loss_fn = torch.nn.CrossEntropyLoss()

        def step(x: np.ndarray, y: np.ndarray) -> float:
            model.train()
            xb = self.to_device(model, x)
            yb = torch.from_numpy(y).to(xb.device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            return float(loss.detach())

        return step

    def export_onnx(self, model: Any, spec: ModelSpec, path: Path) -> dict[str, Any] | None:
        import torch

        model.eval()
        example = torch.zeros((2, *spec.input_shape), dtype=torch.float32)
        batch = torch.export.Dim("batch", min=1)
        # torch.export warns about its own internals (LSTM flat weights, deprecated
        # pytree and size-check APIs); under the test suite's "warnings are errors" those
        # would abort the trace midway, so they are silenced for the export only.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = self._export(model, example, batch)
        program.save(str(path))
        return None

    def _export(self, model: Any, example: Any, batch: Any) -> Any:
        import torch

        return torch.onnx.export(
            model.cpu(),
            (example,),
            dynamo=True,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes={"x": {0: batch}},
            opset_version=self.opset,
            verbose=False,
            optimize=True,
        )
