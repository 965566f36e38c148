"""TF-free GraphDef parsing and DeepSpeech v0.1.0 graph validation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_fixture

from hfagp.audio.deepspeech import load_weights, weights_from_graph
from hfagp.audio.graphdef import build_graph, const_value, node_map, parse_graphdef, tensor_to_numpy
from hfagp.errors import HfagpError


def _tensor(dtype_enum, shape, **fields):
    from tensorboard.compat.proto import tensor_pb2

    t = tensor_pb2.TensorProto(dtype=dtype_enum)
    for s in shape:
        t.tensor_shape.dim.add().size = s
    for key, values in fields.items():
        if key == "tensor_content":
            t.tensor_content = values
        else:
            getattr(t, key).extend(values)
    return t


def test_tensor_content_and_typed_fields():
    a = np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5
    assert np.array_equal(tensor_to_numpy(_tensor(1, [3, 4], tensor_content=a.tobytes())), a)
    scalar = tensor_to_numpy(_tensor(1, [], float_val=[20.0]))
    assert scalar.shape == () and scalar.dtype == np.float32 and float(scalar) == 20.0
    assert tensor_to_numpy(_tensor(3, [], int_val=[29])).dtype == np.int32
    assert tensor_to_numpy(_tensor(9, [2], int64_val=[-7, 8])).tolist() == [-7, 8]


def test_splat_and_empty_fields():
    # fewer values than elements: the last one repeats; none: zeros
    assert tensor_to_numpy(_tensor(1, [2, 3], float_val=[1.5])).tolist() == [[1.5] * 3] * 2
    assert tensor_to_numpy(_tensor(3, [4], int_val=[1, 2])).tolist() == [1, 2, 2, 2]
    assert tensor_to_numpy(_tensor(2, [3])).tolist() == [0.0, 0.0, 0.0]
    strings = tensor_to_numpy(_tensor(7, [], string_val=[b"abc"]))
    assert strings.dtype == object and strings.reshape(-1)[0] == b"abc"


def test_tensor_content_size_mismatch_rejected():
    with pytest.raises(ValueError, match="needs 6"):
        tensor_to_numpy(_tensor(1, [2, 3], tensor_content=np.zeros(5, np.float32).tobytes()))


def test_fixture_consts_bitwise_equal_tensorflow():
    folder = require_fixture("deepspeech", "v010_h64")
    nodes = node_map(parse_graphdef(folder / "model.pb"))
    reference = np.load(folder / "consts.npz", allow_pickle=True)
    assert len(reference.files) == 113
    for name in reference.files:
        ours, theirs = const_value(nodes, name), reference[name]
        assert ours.shape == theirs.shape, name
        if theirs.dtype.kind in "SOU":
            assert [bytes(x) for x in ours.reshape(-1)] == [bytes(x) for x in theirs.reshape(-1)], name
        else:
            assert ours.dtype == theirs.dtype, name
            assert np.array_equal(ours, theirs), name


def test_fixture_weights_sizes():
    weights = load_weights(require_fixture("deepspeech", "v010_h64", "model.pb"))
    assert weights.sizes == {"n_input": 494, "n_hidden": 64, "n_hidden_3": 96, "n_cell": 48,
                             "n_hidden_5": 64, "n_classes": 29}
    assert weights.relu_clip == 20.0
    assert weights.names["fw_kernel"] == "bidirectional_rnn/fw/basic_lstm_cell/kernel"


def _small_consts(h=8, c=4, rng=None):
    rng = rng or np.random.default_rng(0)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    consts = {"h1": f(494, h), "b1": f(h), "h2": f(h, h), "b2": f(h), "h3": f(h, 2 * c), "b3": f(2 * c),
              "h5": f(2 * c, h), "b5": f(h), "h6": f(h, 29), "b6": f(29)}
    for d in ("fw", "bw"):
        consts[f"bidirectional_rnn/{d}/basic_lstm_cell/kernel"] = f(3 * c, 4 * c)
        consts[f"bidirectional_rnn/{d}/basic_lstm_cell/bias"] = f(4 * c)
    return consts


IO = {"input_node": "Placeholder", "input_lengths": "Placeholder", "logits": "Reshape"}


def test_built_graph_roundtrip_and_old_lstm_names(tmp_path):
    consts = _small_consts()
    # older TF names the LSTM variables weights/biases: accepted
    for d in ("fw", "bw"):
        consts[f"bidirectional_rnn/{d}/basic_lstm_cell/weights"] = consts.pop(f"bidirectional_rnn/{d}/basic_lstm_cell/kernel")
        consts[f"bidirectional_rnn/{d}/basic_lstm_cell/biases"] = consts.pop(f"bidirectional_rnn/{d}/basic_lstm_cell/bias")
    path = tmp_path / "small.pb"
    path.write_bytes(build_graph(consts, IO).SerializeToString())
    weights = load_weights(path)
    assert weights.sizes["n_cell"] == 4 and weights.sizes["n_hidden"] == 8
    assert np.array_equal(weights.lstm["bw"][0], consts["bidirectional_rnn/bw/basic_lstm_cell/weights"])
    assert weights.relu_clip == 20.0  # no Minimum/y node: the v0.1.0 default


def test_missing_nodes_are_named():
    consts = _small_consts()
    del consts["h5"], consts["bidirectional_rnn/bw/basic_lstm_cell/kernel"]
    with pytest.raises(HfagpError) as err:
        weights_from_graph(build_graph(consts, {"input_node": "Placeholder"}), source="x.pb")
    message = str(err.value)
    for name in ("h5", "logits", "bidirectional_rnn/bw/basic_lstm_cell/kernel"):
        assert name in message
    assert "b5" not in message.split("missing nodes:")[1].split(";")[0].split(", ")
    assert "x.pb" in message and "v0.1.0" in message


def test_unrelated_graph_and_wrong_shapes_rejected():
    graph = build_graph({"layer_1/weights": np.zeros((4, 4), np.float32)}, {"input_node": "Placeholder"})
    with pytest.raises(HfagpError, match="missing nodes: h1, b1"):
        weights_from_graph(graph)
    consts = _small_consts()
    consts["h2"] = np.zeros((7, 8), np.float32)
    with pytest.raises(HfagpError, match="h2 rows != h1 columns"):
        weights_from_graph(build_graph(consts, IO))
    consts = _small_consts()
    consts["h6"] = np.zeros((8, 28), np.float32)
    consts["b6"] = np.zeros(28, np.float32)
    with pytest.raises(HfagpError, match="expected 29"):
        weights_from_graph(build_graph(consts, IO))


def test_not_a_protobuf_and_missing_file(tmp_path):
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"\xff\xff\xff\xff not a protobuf at all \x00\x01")
    with pytest.raises(HfagpError, match="bad.pb"):
        load_weights(bad)
    with pytest.raises(HfagpError, match="deepspeech-0_1_0-b90017e8.pb"):
        load_weights(tmp_path / "absent.pb")
