"""FLOPs per sample, counted from an ONNX graph.

Counts 2 x the multiply-accumulates of the nodes that carry the arithmetic: ``Conv``,
``Gemm``, ``MatMul`` and ``LSTM`` (its input and recurrent matrix products at every
step). Element-wise ops, pooling and the LSTM's gate non-linearities are not counted:
they are a few percent of these models' work, and counting them would make the figure
depend on how each exporter decomposes them.

Shapes are not taken from ONNX shape inference, which loses track of them in the
exporters' dynamic-shape subgraphs (MXNet's LSTM, tf2onnx's reshapes): the graph is run
once in ONNX Runtime on a zero batch of one, with every operand it needs exposed as an
extra output, so the counted shapes are the ones that really flow.
"""

from __future__ import annotations

import math
from pathlib import Path

COUNTED = ("Conv", "Gemm", "MatMul", "LSTM")


def flops_per_sample(path: Path) -> int:
    """FLOPs of one sample through the ONNX model at ``path``."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    graph = model.graph
    nodes = [n for n in graph.node if n.op_type in COUNTED]
    wanted = {name for n in nodes for name in (*n.input[:3], n.output[0]) if name}
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
    initializers = {i.name for i in graph.initializer}
    feed = {}
    for value in session.get_inputs():
        if value.name in initializers:
            continue
        dims = [1 if not isinstance(d, int) else d for d in value.shape]
        dims[0] = 1
        feed[value.name] = np.zeros(dims, dtype=np.float32)
    names = [o.name for o in session.get_outputs()]
    shapes = dict(zip(names, (a.shape for a in session.run(names, feed)), strict=True))
    for init in graph.initializer:
        shapes.setdefault(init.name, tuple(init.dims))

    total = 0
    for node in nodes:
        if node.op_type == "Conv":
            total += 2 * math.prod(shapes[node.input[1]]) * math.prod(shapes[node.output[0]][2:])
        elif node.op_type == "Gemm":
            a, out = shapes[node.input[0]], shapes[node.output[0]]
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            k = a[0] if trans_a else a[1]
            total += 2 * out[0] * out[1] * k
        elif node.op_type == "MatMul":
            a, out = shapes[node.input[0]], shapes[node.output[0]]
            total += 2 * math.prod(out) * a[-1]
        else:  # LSTM: X (T, N, I), W (D, 4H, I), R (D, 4H, H)
            steps, batch = shapes[node.input[0]][:2]
            directions, gates, inputs = shapes[node.input[1]]
            hidden = shapes[node.input[2]][2]
            total += 2 * steps * batch * directions * gates * (inputs + hidden)
    return int(total)
