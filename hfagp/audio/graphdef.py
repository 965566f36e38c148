"""Reading a frozen TensorFlow GraphDef without TensorFlow.

The frozen DeepSpeech v0.1.0 model (``deepspeech-0_1_0-b90017e8.pb``) is a
binary ``GraphDef`` protobuf in which every trained variable became a ``Const``
node of the same name (``h1``, ``b1``, ...,
``bidirectional_rnn/fw/basic_lstm_cell/kernel``). tensorboard ships the
compiled protos (``tensorboard.compat.proto.graph_pb2``), so the file parses
with plain protobuf, and each Const's ``TensorProto`` decodes with numpy:

- ``dtype`` is TensorFlow's ``DataType`` enum (DT_FLOAT = 1, ...);
- the shape is ``tensor_shape.dim[].size``;
- the data is either ``tensor_content`` (raw little-endian, row-major bytes)
  or a typed repeated field (``float_val``, ``int_val``, ...). A typed field
  holding fewer values than the shape's element count means "repeat the last
  value" (a splat); an empty one means zeros.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hfagp.errors import HfagpError

# TensorFlow DataType enum -> (numpy dtype, TensorProto typed field)
_DTYPES: dict[int, tuple[np.dtype, str]] = {
    1: (np.dtype("<f4"), "float_val"),  # DT_FLOAT
    2: (np.dtype("<f8"), "double_val"),  # DT_DOUBLE
    3: (np.dtype("<i4"), "int_val"),  # DT_INT32
    4: (np.dtype("u1"), "int_val"),  # DT_UINT8
    5: (np.dtype("<i2"), "int_val"),  # DT_INT16
    6: (np.dtype("i1"), "int_val"),  # DT_INT8
    9: (np.dtype("<i8"), "int64_val"),  # DT_INT64
    10: (np.dtype("bool"), "bool_val"),  # DT_BOOL
    17: (np.dtype("<u2"), "int_val"),  # DT_UINT16
    19: (np.dtype("<f2"), "half_val"),  # DT_HALF (half_val holds the raw bits)
    22: (np.dtype("<u4"), "uint32_val"),  # DT_UINT32
    23: (np.dtype("<u8"), "uint64_val"),  # DT_UINT64
}
DT_STRING = 7


def parse_graphdef(path: str | Path):
    """Parse a binary frozen GraphDef file and return the ``GraphDef`` message.

    Raises :class:`HfagpError` naming the file when it is missing or is not a
    GraphDef protobuf.
    """
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto import graph_pb2

    path = Path(path)
    if not path.is_file():
        raise HfagpError(f"model file not found: {path}")
    data = path.read_bytes()
    graph = graph_pb2.GraphDef()
    try:
        graph.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as err:
        raise HfagpError(
            f"{path} is not a frozen TensorFlow GraphDef (.pb) file ({err}); "
            f"a DeepSpeech v0.1.0 model such as deepspeech-0_1_0-b90017e8.pb is expected"
        ) from None
    del data
    if len(graph.node) == 0:
        raise HfagpError(
            f"{path} parsed as an empty TensorFlow graph (no nodes); it is not a frozen "
            f"DeepSpeech v0.1.0 model (deepspeech-0_1_0-b90017e8.pb is expected)"
        )
    return graph


def tensor_to_numpy(tensor) -> np.ndarray:
    """Decode a ``TensorProto`` to a numpy array, as TensorFlow's ``MakeNdarray`` does.

    Numeric dtypes come from ``tensor_content`` when present, otherwise from
    the typed field with splat semantics (missing trailing values repeat the
    last one; no values at all means zeros). DT_STRING gives an object array
    of ``bytes``.
    """
    shape = tuple(int(d.size) for d in tensor.tensor_shape.dim)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if tensor.dtype == DT_STRING:
        values = list(tensor.string_val)
        out = np.empty(count, dtype=object)
        if values:
            out[: len(values)] = values
            out[len(values):] = values[-1]
        else:
            out[:] = b""
        return out.reshape(shape)
    if tensor.dtype not in _DTYPES:
        raise ValueError(f"unsupported TensorProto dtype enum {tensor.dtype}")
    dtype, field = _DTYPES[tensor.dtype]
    if tensor.tensor_content:
        flat = np.frombuffer(tensor.tensor_content, dtype=dtype)
        if flat.size != count:
            raise ValueError(f"tensor_content holds {flat.size} values, shape {shape} needs {count}")
        return flat.reshape(shape).astype(dtype.newbyteorder("="), copy=True)
    values = list(getattr(tensor, field))
    if tensor.dtype == 19:  # half_val stores the uint16 bit patterns
        vals = np.array(values, dtype=np.uint16).view(np.float16)
    else:
        vals = np.array(values, dtype=dtype)
    out = np.zeros(count, dtype=dtype.newbyteorder("="))
    if vals.size:
        n = min(vals.size, count)
        out[:n] = vals[:n]
        out[n:] = vals[n - 1]
    return out.reshape(shape)


def node_map(graph) -> dict:
    """Map node name -> NodeDef."""
    return {node.name: node for node in graph.node}


def const_value(nodes: dict, name: str) -> np.ndarray | None:
    """Value of the Const node ``name`` (or ``None`` when absent or not a Const)."""
    node = nodes.get(name)
    if node is None or node.op != "Const" or "value" not in node.attr:
        return None
    return tensor_to_numpy(node.attr["value"].tensor)


def const_names(nodes: dict) -> list[str]:
    """Names of every Const node."""
    return [name for name, node in nodes.items() if node.op == "Const"]


def const_node(name: str, array: np.ndarray):
    """A ``Const`` NodeDef holding ``array`` (float32/float64/int32/int64) in ``tensor_content``.

    Used to write small test graphs and benchmark models; the encoding is the
    one ``freeze_graph`` produces for weights.
    """
    from tensorboard.compat.proto import node_def_pb2

    array = np.asarray(array)
    enum = {np.dtype("float32"): 1, np.dtype("float64"): 2, np.dtype("int32"): 3, np.dtype("int64"): 9}[array.dtype]
    node = node_def_pb2.NodeDef(name=name, op="Const")
    node.attr["dtype"].type = enum
    tensor = node.attr["value"].tensor
    tensor.dtype = enum
    for size in array.shape:
        tensor.tensor_shape.dim.add().size = int(size)
    tensor.tensor_content = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
    return node


def build_graph(consts: dict[str, np.ndarray], ops: dict[str, str] | None = None):
    """A GraphDef with the given Const nodes plus input-less nodes ``{name: op}`` (e.g. Placeholders)."""
    from tensorboard.compat.proto import graph_pb2, node_def_pb2

    graph = graph_pb2.GraphDef()
    for name, op in (ops or {}).items():
        graph.node.append(node_def_pb2.NodeDef(name=name, op=op))
    for name, array in consts.items():
        graph.node.append(const_node(name, array))
    return graph
