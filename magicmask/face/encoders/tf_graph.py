"""Read a frozen TensorFlow graph (a ``GraphDef`` protobuf) without TensorFlow or OpenCV.

Only what a torch port needs: the nodes by name, their string/int/float attributes and their
float constants as numpy arrays. The message types are declared here at runtime with protobuf's
descriptor API, so no generated ``_pb2`` module ties us to one protobuf release. They carry only
the fields we read, with TensorFlow's field numbers; protobuf skips every other field.

Why not OpenCV: ``cv2.dnn.readNetFromTensorflow`` is gone from opencv-python 5.1, and 4.x cannot
read FaceNet's graph at all.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from mmcore.errors import ModelError

# tensorflow/core/framework/types.proto
_DT_FLOAT = 1

_F = descriptor_pb2.FieldDescriptorProto
# (message, [(field, number, type, repeated, message type)]) as in tensorflow/core/framework/*.proto;
# a nested message follows its parent
_MESSAGES = [
    ("TensorShapeProto", [("dim", 2, _F.TYPE_MESSAGE, True, "TensorShapeProto.Dim")]),
    ("TensorShapeProto.Dim", [("size", 1, _F.TYPE_INT64, False, None)]),
    (
        "TensorProto",
        [
            ("dtype", 1, _F.TYPE_INT32, False, None),
            ("tensor_shape", 2, _F.TYPE_MESSAGE, False, "TensorShapeProto"),
            ("tensor_content", 4, _F.TYPE_BYTES, False, None),
            ("float_val", 5, _F.TYPE_FLOAT, True, None),
        ],
    ),
    (
        "AttrValue",
        [
            ("list", 1, _F.TYPE_MESSAGE, False, "AttrValue.ListValue"),
            ("s", 2, _F.TYPE_BYTES, False, None),
            ("i", 3, _F.TYPE_INT64, False, None),
            ("f", 4, _F.TYPE_FLOAT, False, None),
            ("tensor", 8, _F.TYPE_MESSAGE, False, "TensorProto"),
        ],
    ),
    (
        "AttrValue.ListValue",
        [("s", 2, _F.TYPE_BYTES, True, None), ("i", 3, _F.TYPE_INT64, True, None)],
    ),
    (
        "NodeDef",
        [
            ("name", 1, _F.TYPE_STRING, False, None),
            ("op", 2, _F.TYPE_STRING, False, None),
            ("input", 3, _F.TYPE_STRING, True, None),
            ("attr", 5, _F.TYPE_MESSAGE, True, "NodeDef.AttrEntry"),
        ],
    ),
    ("GraphDef", [("node", 1, _F.TYPE_MESSAGE, True, "NodeDef")]),
]
_PACKAGE = "mmvideo_tf_graph"


@functools.cache
def _graph_def_class() -> type[message.Message]:
    proto = descriptor_pb2.FileDescriptorProto(
        name=f"{_PACKAGE}.proto", package=_PACKAGE, syntax="proto3"
    )
    declared: dict[str, descriptor_pb2.DescriptorProto] = {}
    for full_name, fields in _MESSAGES:
        outer, _, inner = full_name.rpartition(".")
        parent = declared[outer].nested_type if outer else proto.message_type
        declared[full_name] = msg = parent.add(name=inner)
        for name, number, kind, repeated, type_name in fields:
            field = msg.field.add(name=name, number=number, type=kind)
            field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            if type_name:
                field.type_name = f".{_PACKAGE}.{type_name}"
    # map<string, AttrValue> attr = 5 is, on the wire, a repeated key/value entry message.
    entry = declared["NodeDef"].nested_type.add(name="AttrEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    entry.field.add(
        name="value",
        number=2,
        type=_F.TYPE_MESSAGE,
        label=_F.LABEL_OPTIONAL,
        type_name=f".{_PACKAGE}.AttrValue",
    )
    # A private pool: no clash with TensorFlow's own types if it is imported too.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.GraphDef"))


class FrozenGraph:
    """The nodes of a frozen ``GraphDef`` file, by name."""

    def __init__(self, path: str | Path, what: str = "TensorFlow graph"):
        self.path = Path(path)
        graph = _graph_def_class()()
        try:
            graph.ParseFromString(self.path.read_bytes())
        except message.DecodeError as exc:
            raise ModelError(f"{self.path}: not a readable {what} (protobuf: {exc})") from exc
        self.nodes = {node.name: node for node in graph.node}
        if not self.nodes:
            raise ModelError(f"{self.path}: not a {what} (no graph nodes)")

    def node(self, name: str, op: str | None = None):
        """The node ``name`` (checked to be an ``op`` node), or a one-line ModelError."""
        node = self.nodes.get(name)
        if node is None or (op is not None and node.op != op):
            raise ModelError(
                f"{self.path}: node {name}{f' ({op})' if op else ''} missing; not the expected graph"
            )
        return node

    def const(self, name: str) -> np.ndarray:
        """A float32 ``Const`` node as an array of its declared shape (TensorFlow's layout)."""
        tensor = self.node(name, "Const").attr["value"].tensor
        if tensor.dtype != _DT_FLOAT:
            raise ModelError(f"{self.path}: constant {name} is not float32")
        shape = tuple(d.size for d in tensor.tensor_shape.dim)
        if tensor.tensor_content:
            # tensor_content is the raw little-endian buffer of the whole tensor.
            values = np.frombuffer(tensor.tensor_content, dtype="<f4")
        else:
            # Small or constant-filled tensors list their values; a single value fills the shape.
            values = np.asarray(tensor.float_val, dtype=np.float32)
            if values.size == 1:
                values = np.full(shape, values[0], dtype=np.float32)
        if values.size != int(np.prod(shape)):
            raise ModelError(
                f"{self.path}: constant {name} holds {values.size} values for shape {list(shape)}"
            )
        return values.astype(np.float32).reshape(shape)

    def consumer(self, name: str, op: str):
        """The ``op`` node that reads node ``name`` as its first input (e.g. a conv's BiasAdd)."""
        for node in self.nodes.values():
            if node.op == op and node.input and node.input[0] == name:
                return node
        raise ModelError(f"{self.path}: no {op} reads {name}; not the expected graph")

    def input_const(self, name: str) -> str:
        """The name of the one ``Const`` input of node ``name`` (e.g. a Mul's scale)."""
        for source in self.node(name).input:
            if source in self.nodes and self.nodes[source].op == "Const":
                return source
        raise ModelError(f"{self.path}: node {name} has no constant input")
