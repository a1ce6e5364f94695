"""FLOPs per sample, counted from an ONNX graph.

Counts 2 x the multiply-accumulates of the nodes that carry the arithmetic: ``Conv``,
``ConvTranspose``, ``Gemm``, ``MatMul`` and ``LSTM`` (its input and recurrent matrix
products at every step). Element-wise ops, pooling and the LSTM's gate non-linearities
are not counted: they are a few percent of these models' work, and counting them would
make the figure depend on how each exporter decomposes them.

Shapes are not taken from ONNX shape inference, which loses track of them in the
exporters' dynamic-shape subgraphs (MXNet's LSTM, tf2onnx's reshapes): the graph is run
once in ONNX Runtime on a zero batch of one, with every operand it needs exposed as an
extra output, so the counted shapes are the ones that really flow.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

COUNTED = ("Conv", "ConvTranspose", "Gemm", "MatMul", "LSTM")


def flops_per_sample(path: Path) -> int:
    """FLOPs of one sample through the ONNX model at ``path``.

    A ``Loop`` (how jax2onnx writes ``lax.scan``) counts the matrix products of its body
    once per iteration; body operands are resolved through the loop-carried inputs.
    """
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    nodes = [n for n in graph.node if n.op_type in (*COUNTED, "Loop")]
    wanted = {name for n in nodes for name in (*n.input, n.output[0]) if name}
    known = {o.name for o in graph.output}
    graph.output.extend(
        onnx.helper.make_empty_tensor_value_info(name) for name in sorted(wanted - known)
    )
    options = ort.SessionOptions()
    # Optimizations would fuse or fold the very tensors exposed here.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    feed = {}
    for value in session.get_inputs():
        if value.name in initializers:
            continue
        dims = [1 if not isinstance(d, int) else d for d in value.shape]
        dims[0] = 1
        feed[value.name] = np.zeros(dims, dtype=np.float32)
    names = [o.name for o in session.get_outputs()]
    values = dict(zip(names, session.run(names, feed), strict=True))
    values = {**{k: v for k, v in initializers.items() if k not in values}, **values}
    shapes = {name: tuple(np.shape(v)) for name, v in values.items()}
    return _count(graph.node, shapes, values, path)


def _count(nodes: Any, shapes: dict[str, tuple], values: dict[str, Any], path: Path) -> int:
    total = 0
    for node in nodes:
        if node.op_type == "Loop":
            body = next(a.g for a in node.attribute if a.name == "body")
            trips = int(values[node.input[0]]) if node.input[0] else 0
            # Body inputs: iteration number, condition, then the loop-carried values,
            # which start as the Loop's own inputs 2, 3, ...
            inner = dict(shapes)
            for outer, carried in zip(node.input[2:], body.input[2:], strict=False):
                if outer in shapes:
                    inner[carried.name] = shapes[outer]
            per_trip = _count([n for n in body.node if n.op_type in COUNTED], inner, values, path)
            total += trips * per_trip
            continue
        if node.op_type not in COUNTED:
            continue
        needed = node.input[:3] if node.op_type == "LSTM" else node.input[:2]
        missing = [n for n in needed if n and n not in shapes]
        if missing:
            raise ValueError(
                f"{path}: no shape for {missing} of a {node.op_type} node; cannot count its FLOPs"
            )
        if node.op_type == "Conv":
            out = shapes.get(node.output[0])
            if out is None:
                raise ValueError(f"{path}: no output shape for a Conv node")
            total += 2 * math.prod(shapes[node.input[1]]) * math.prod(out[2:])
        elif node.op_type == "ConvTranspose":
            # Every *input* pixel meets the whole kernel, W (C, M / group, kh, kw): what
            # lands in the output padding is computed too.
            x = shapes[node.input[0]]
            total += 2 * math.prod(shapes[node.input[1]]) * math.prod(x[2:])
        elif node.op_type == "Gemm":
            a, b = shapes[node.input[0]], shapes[node.input[1]]
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            trans_b = any(at.name == "transB" and at.i for at in node.attribute)
            m, k = (a[1], a[0]) if trans_a else (a[0], a[1])
            n = b[0] if trans_b else b[1]
            total += 2 * m * k * n
        elif node.op_type == "MatMul":
            a, b = shapes[node.input[0]], shapes[node.input[1]]
            batch = max(math.prod(a[:-2] or (1,)), math.prod(b[:-2] or (1,)))
            rows = a[-2] if len(a) > 1 else 1
            total += 2 * batch * rows * a[-1] * b[-1]
        else:  # LSTM: X (T, N, I), W (D, 4H, I), R (D, 4H, H)
            steps, batch = shapes[node.input[0]][:2]
            directions, gates, inputs = shapes[node.input[1]]
            hidden = shapes[node.input[2]][2]
            total += 2 * steps * batch * directions * gates * (inputs + hidden)
    return int(total)
