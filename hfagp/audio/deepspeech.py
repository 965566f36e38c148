"""DeepSpeech v0.1.0 inference in PyTorch, with weights read from the frozen graph.

Network (Mozilla DeepSpeech tag v0.1.0, ``BiRNN``), all sizes inferred from
the graph's Const shapes (the real model has H = C = 2048):

====== ================================================ ===================
layer  frozen Const nodes                                shape
====== ================================================ ===================
1      ``h1``, ``b1``                                    [494, H], [H]
2      ``h2``, ``b2``                                    [H, H], [H]
3      ``h3``, ``b3``                                    [H, 2C], [2C]
LSTM   ``bidirectional_rnn/{fw,bw}/basic_lstm_cell/``    [2C + C, 4C], [4C]
       ``kernel``, ``bias``
5      ``h5``, ``b5``                                    [2C, H5], [H5]
6      ``h6``, ``b6``                                    [H5, 29], [29]
====== ================================================ ===================

Layers 1, 2, 3 and 5 are ``min(relu(x @ h + b), relu_clip)`` (relu_clip = 20,
read from the ``Minimum/y`` Const when present); layer 6 is linear and its
output is the raw, pre-softmax logits (T, 29). The recurrent part is TF's
``BasicLSTMCell(C, forget_bias=1.0)`` run forward and backward over the whole
utterance (batch 1, full length, so ``sequence_length`` reversal equals a plain
reversal); the kernel's columns are the gates ``i, j, f, o``::

    z = [x_t, h_{t-1}] @ kernel + bias
    c_t = c_{t-1} * sigmoid(f + 1.0) + sigmoid(i) * tanh(j);  h_t = tanh(c_t) * sigmoid(o)

and layer 5 reads ``concat([fw, bw])``. The LSTM kernel/bias may also be named
``weights``/``biases`` (older TF); any float Const of rank 2/1 directly under
``bidirectional_rnn/{fw,bw}/`` outside the while loop is accepted.

Speed: at batch 1 the recurrence is bound by memory traffic (two 2048x8192
float32 matrices, 128 MiB, are read every 20 ms of audio). :class:`DeepSpeechV010`
therefore computes the input projection of both directions for all time steps
with one matrix product, keeps the recurrent matrices contiguous, and runs a
minimal per-step loop (two GEMVs and a handful of fused element-wise ops).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hfagp.audio.graphdef import const_value, node_map, parse_graphdef
from hfagp.errors import HfagpError
from hfagp.logs import get_logger

log = get_logger("audio")

MODEL_FILENAME = "deepspeech-0_1_0-b90017e8.pb"
MODEL_SHA1 = "b90017e816572ddce84f5843f1fa21e6a377975e"
MODEL_SOURCE = (
    "the GitHub release v0.0.1 of osmr/deepspeech_features (deepspeech-0_1_0-b90017e8.pb.zip, unzip it), "
    "the file AD-NeRF caches in ~/.tensorflow/models/"
)
N_INPUT = 494  # 26 MFCC x 19 context frames
N_CLASSES = 29  # space, a-z, apostrophe, CTC blank
FORGET_BIAS = 1.0  # fixed in DeepSpeech v0.1.0's BasicLSTMCell
DEFAULT_RELU_CLIP = 20.0
DENSE_NODES = ("h1", "b1", "h2", "b2", "h3", "b3", "h5", "b5", "h6", "b6")
IO_NODES = ("input_node", "logits")
LSTM_NAMES = {"kernel": ("kernel", "weights"), "bias": ("bias", "biases")}


def missing_model_message(path: str | Path) -> str:
    """The error text for a configured DeepSpeech model file that does not exist."""
    return (
        f"DeepSpeech model file not found: {path}. The audio features need DeepSpeech v0.1.0's frozen "
        f"graph {MODEL_FILENAME} (about 490 MB, SHA-1 {MODEL_SHA1}) from {MODEL_SOURCE}. Put it at {path} "
        f"(the path that models.deepspeech names in config.yaml), or set models.deepspeech: null to use "
        f"the offline MFCC fallback features instead (not DeepSpeech)."
    )


def sha1_of(path: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-1 hex digest of a file."""
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class DeepSpeechWeights:
    """Numpy weights of a DeepSpeech v0.1.0 graph, in TensorFlow layout."""

    dense: dict[str, np.ndarray]  # h1, b1, ..., h6, b6
    lstm: dict[str, tuple[np.ndarray, np.ndarray]]  # "fw"/"bw" -> (kernel, bias)
    relu_clip: float = DEFAULT_RELU_CLIP
    forget_bias: float = FORGET_BIAS
    names: dict[str, str] = field(default_factory=dict)  # role -> node name used

    @property
    def sizes(self) -> dict[str, int]:
        """n_input, n_hidden (H), n_hidden_3 (LSTM input), n_cell (C), n_hidden_5, n_classes."""
        kernel = self.lstm["fw"][0]
        return {
            "n_input": int(self.dense["h1"].shape[0]),
            "n_hidden": int(self.dense["h1"].shape[1]),
            "n_hidden_3": int(self.dense["h3"].shape[1]),
            "n_cell": int(kernel.shape[1] // 4),
            "n_hidden_5": int(self.dense["h5"].shape[1]),
            "n_classes": int(self.dense["h6"].shape[1]),
        }


def _find_lstm_const(nodes: dict, direction: str, role: str) -> str | None:
    """Name of the LSTM kernel (role 'kernel', rank 2) or bias (rank 1) Const of a direction."""
    for suffix in LSTM_NAMES[role]:
        name = f"bidirectional_rnn/{direction}/basic_lstm_cell/{suffix}"
        if name in nodes and nodes[name].op == "Const":
            return name
    rank = 2 if role == "kernel" else 1
    prefix = f"bidirectional_rnn/{direction}/"
    for name, node in nodes.items():
        if node.op != "Const" or not name.startswith(prefix) or "/while/" in name:
            continue
        if name.startswith(f"{prefix}{direction}/"):  # the dynamic_rnn bookkeeping scope
            continue
        tensor = node.attr["value"].tensor
        if tensor.dtype == 1 and len(tensor.tensor_shape.dim) == rank:
            return name
    return None


def weights_from_graph(graph, source: str = "the graph") -> DeepSpeechWeights:
    """Extract and validate the DeepSpeech v0.1.0 weights of a parsed GraphDef.

    Raises :class:`HfagpError` listing every missing node, or describing the
    first inconsistent shape, when the graph is not a v0.1.0 DeepSpeech model.
    """
    nodes = node_map(graph)
    missing = [name for name in DENSE_NODES + IO_NODES if name not in nodes]
    lstm_names: dict[str, dict[str, str]] = {}
    for direction in ("fw", "bw"):
        lstm_names[direction] = {}
        for role in ("kernel", "bias"):
            name = _find_lstm_const(nodes, direction, role)
            if name is None:
                missing.append(f"bidirectional_rnn/{direction}/basic_lstm_cell/{role}")
            else:
                lstm_names[direction][role] = name
    not_const = [n for n in DENSE_NODES if n in nodes and nodes[n].op != "Const"]
    if missing or not_const:
        details = []
        if missing:
            details.append("missing nodes: " + ", ".join(missing))
        if not_const:
            details.append("not frozen Const nodes: " + ", ".join(not_const))
        raise HfagpError(
            f"{source} is not a frozen DeepSpeech v0.1.0 graph ({'; '.join(details)}); "
            f"{MODEL_FILENAME} (SHA-1 {MODEL_SHA1}) is expected. Newer DeepSpeech releases (0.2-0.9, "
            f".pbmm/.tflite) have a different network and are not supported."
        )
    dense = {}
    for name in DENSE_NODES:
        value = const_value(nodes, name)
        if value is None or value.dtype != np.float32:
            raise HfagpError(f"{source}: Const node {name} is not float32 (got {getattr(value, 'dtype', None)})")
        dense[name] = value
    lstm = {
        d: (const_value(nodes, lstm_names[d]["kernel"]), const_value(nodes, lstm_names[d]["bias"]))
        for d in ("fw", "bw")
    }
    clip = const_value(nodes, "Minimum/y")
    relu_clip = float(clip) if clip is not None and clip.size == 1 and clip.dtype.kind == "f" else DEFAULT_RELU_CLIP
    names = {f"{d}_{r}": lstm_names[d][r] for d in ("fw", "bw") for r in ("kernel", "bias")}
    weights = DeepSpeechWeights(dense=dense, lstm=lstm, relu_clip=relu_clip, names=names)
    check_shapes(weights, source)
    n_classes = const_value(nodes, "logits/shape/2")
    if n_classes is not None and n_classes.size == 1 and int(n_classes.reshape(-1)[0]) != N_CLASSES:
        raise HfagpError(f"{source}: logits/shape/2 is {int(n_classes.reshape(-1)[0])}, DeepSpeech v0.1.0 has {N_CLASSES}")
    return weights


def check_shapes(weights: DeepSpeechWeights, source: str = "the graph") -> None:
    """Check that the weight shapes chain as in DeepSpeech v0.1.0; raise HfagpError otherwise."""
    d = weights.dense

    def need(cond: bool, what: str) -> None:
        if not cond:
            shapes = {k: list(v.shape) for k, v in d.items()}
            shapes.update({f"{k}_kernel": list(v[0].shape) for k, v in weights.lstm.items()})
            shapes.update({f"{k}_bias": list(v[1].shape) for k, v in weights.lstm.items()})
            raise HfagpError(f"{source} is not a DeepSpeech v0.1.0 graph: {what} (shapes: {shapes})")

    for i in (1, 2, 3, 5, 6):
        need(d[f"h{i}"].ndim == 2 and d[f"b{i}"].shape == (d[f"h{i}"].shape[1],), f"h{i}/b{i} shapes disagree")
    need(d["h1"].shape[0] == N_INPUT, f"h1 has {d['h1'].shape[0]} input rows, expected {N_INPUT} (26 MFCC x 19 frames)")
    need(d["h2"].shape[0] == d["h1"].shape[1], "h2 rows != h1 columns")
    need(d["h3"].shape[0] == d["h2"].shape[1], "h3 rows != h2 columns")
    n3 = d["h3"].shape[1]
    for direction, (kernel, bias) in weights.lstm.items():
        need(kernel.ndim == 2 and kernel.shape[1] % 4 == 0, f"{direction} LSTM kernel columns are not 4 gates")
        cell = kernel.shape[1] // 4
        need(kernel.shape[0] == n3 + cell, f"{direction} LSTM kernel rows != layer-3 width + cell size")
        need(bias.shape == (4 * cell,), f"{direction} LSTM bias size != 4 x cell size")
    need(weights.lstm["fw"][0].shape == weights.lstm["bw"][0].shape, "fw and bw LSTM kernels differ in shape")
    need(d["h5"].shape[0] == 2 * (weights.lstm["fw"][0].shape[1] // 4), "h5 rows != 2 x cell size")
    need(d["h6"].shape[0] == d["h5"].shape[1], "h6 rows != h5 columns")
    need(d["h6"].shape[1] == N_CLASSES, f"h6 has {d['h6'].shape[1]} classes, expected {N_CLASSES}")


def load_weights(path: str | Path) -> DeepSpeechWeights:
    """Parse a frozen DeepSpeech v0.1.0 ``.pb`` and return its validated weights."""
    path = Path(path)
    if not path.is_file():
        raise HfagpError(missing_model_message(path))
    graph = parse_graphdef(path)
    weights = weights_from_graph(graph, source=str(path))
    del graph
    return weights


def _torch():
    import torch

    return torch


class DeepSpeechV010:
    """DeepSpeech v0.1.0 forward pass (inference only) as a PyTorch module.

    Built from :class:`DeepSpeechWeights` (TF layout) or with random weights of
    given sizes (:meth:`random`, for benchmarks). Call :meth:`forward` with the
    whitened (T, 494) input; it returns float32 logits (T, 29).
    """

    # "torch": :meth:`bilstm_nn` (torch.nn.LSTM's CPU kernel, the faster one in bench/bench_audio.py);
    # "loop": :meth:`bilstm` (explicit per-step loop; same results to ~1e-6)
    rnn_impl = "torch"

    def __init__(self, weights: DeepSpeechWeights):
        torch = _torch()
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        d = weights.dense
        self.relu_clip = float(weights.relu_clip)
        self.sizes = weights.sizes
        # dense layers keep TF's (in, out) layout: x @ h + b
        self.h = {i: t(d[f"h{i}"]) for i in (1, 2, 3, 5, 6)}
        self.b = {i: t(d[f"b{i}"]) for i in (1, 2, 3, 5, 6)}
        cell = self.sizes["n_cell"]
        n3 = self.sizes["n_hidden_3"]
        wx, wh, bias = [], [], []
        for direction in ("fw", "bw"):
            kernel, b = weights.lstm[direction]
            # TF gate columns i, j, f, o -> ours i, f, o, j (three sigmoids then one tanh)
            order = np.concatenate([np.arange(g * cell, (g + 1) * cell) for g in (0, 2, 3, 1)])
            kernel = kernel[:, order]
            b = b[order].astype(np.float32).copy()
            b[cell: 2 * cell] += np.float32(weights.forget_bias)
            wx.append(kernel[:n3])
            wh.append(kernel[n3:])
            bias.append(b)
        self.cell = cell
        self.wx = t(np.concatenate(wx, axis=1))  # (n3, 8C): both directions' input projections
        self.bx = t(np.concatenate(bias))  # (8C,)
        self.wh = [t(wh[0]), t(wh[1])]  # (C, 4C) each, contiguous

    @classmethod
    def random(cls, n_hidden: int = 2048, n_cell: int = 2048, seed: int = 0) -> "DeepSpeechV010":
        """A network of the given sizes with random weights (benchmarks and tests)."""
        rng = np.random.default_rng(seed)
        n3 = 2 * n_cell

        def mat(rows, cols):
            return (rng.standard_normal((rows, cols), dtype=np.float32) / np.sqrt(rows)).astype(np.float32)

        dense = {
            "h1": mat(N_INPUT, n_hidden), "b1": np.zeros(n_hidden, np.float32),
            "h2": mat(n_hidden, n_hidden), "b2": np.zeros(n_hidden, np.float32),
            "h3": mat(n_hidden, n3), "b3": np.zeros(n3, np.float32),
            "h5": mat(2 * n_cell, n_hidden), "b5": np.zeros(n_hidden, np.float32),
            "h6": mat(n_hidden, N_CLASSES), "b6": np.zeros(N_CLASSES, np.float32),
        }
        lstm = {d: (mat(n3 + n_cell, 4 * n_cell), np.zeros(4 * n_cell, np.float32)) for d in ("fw", "bw")}
        return cls(DeepSpeechWeights(dense=dense, lstm=lstm))

    def _dense(self, x, i: int, clip: bool = True):
        torch = _torch()
        y = torch.addmm(self.b[i], x, self.h[i])
        if clip:
            y.clamp_(0.0, self.relu_clip)
        return y

    def bilstm(self, x3):
        """Bidirectional LSTM over (T, n3) -> (T, 2C) = concat([fw, bw]) in natural time order."""
        torch = _torch()
        steps = x3.shape[0]
        cell = self.cell
        out = torch.zeros(steps, 2, cell)
        if steps == 0:
            return out.reshape(0, 2 * cell)
        gx = torch.addmm(self.bx, x3, self.wx).view(steps, 2, 4 * cell)  # all input projections
        gates = torch.empty(2, 4 * cell)
        h = torch.zeros(2, cell)
        c = torch.zeros(2, cell)
        tmp = torch.empty(2, cell)
        wh_fw, wh_bw = self.wh
        sig, tnh = gates[:, : 3 * cell], gates[:, 3 * cell:]
        i_g, f_g, o_g = gates[:, :cell], gates[:, cell: 2 * cell], gates[:, 2 * cell: 3 * cell]
        for step in range(steps):
            back = steps - 1 - step
            torch.addmm(gx[step, 0:1], h[0:1], wh_fw, out=gates[0:1])
            torch.addmm(gx[back, 1:2], h[1:2], wh_bw, out=gates[1:2])
            torch.sigmoid(sig, out=sig)
            torch.tanh(tnh, out=tnh)
            c.mul_(f_g).addcmul_(i_g, tnh)
            torch.tanh(c, out=tmp)
            torch.mul(tmp, o_g, out=h)
            out[step, 0] = h[0]
            out[back, 1] = h[1]
        return out.reshape(steps, 2 * cell)

    def torch_lstm(self):
        """The same bidirectional LSTM as a ``torch.nn.LSTM`` (gate order i, f, g, o), built on first use."""
        torch = _torch()
        if getattr(self, "_nn_lstm", None) is None:
            cell, n3 = self.cell, self.sizes["n_hidden_3"]
            lstm = torch.nn.LSTM(n3, cell, bidirectional=True)
            blocks = [0, 1, 3, 2]  # ours i, f, o, j -> torch i, f, g(=j), o

            def reorder(w):  # (..., 4C) ours -> (4C, ...) torch
                out = torch.cat([w[..., b * cell:(b + 1) * cell] for b in blocks], dim=-1)
                return out.t().contiguous() if out.dim() == 2 else out

            with torch.no_grad():
                for k, suffix in enumerate(("", "_reverse")):
                    getattr(lstm, f"weight_ih_l0{suffix}").copy_(reorder(self.wx[:, k * 4 * cell:(k + 1) * 4 * cell]))
                    getattr(lstm, f"weight_hh_l0{suffix}").copy_(reorder(self.wh[k]))
                    getattr(lstm, f"bias_ih_l0{suffix}").copy_(reorder(self.bx[k * 4 * cell:(k + 1) * 4 * cell]))
                    getattr(lstm, f"bias_hh_l0{suffix}").zero_()
            lstm.eval()
            self._nn_lstm = lstm
        return self._nn_lstm

    def bilstm_nn(self, x3):
        """:meth:`bilstm` computed by ``torch.nn.LSTM``'s own CPU kernel (a cross-check and alternative)."""
        if x3.shape[0] == 0:
            return x3.new_zeros((0, 2 * self.cell))
        out, _ = self.torch_lstm()(x3[:, None, :])
        return out[:, 0, :]

    def forward(self, x, intermediates: dict | None = None):
        """Logits (T, 29) for the whitened input ``x`` (T, 494), float32 tensor or array.

        When ``intermediates`` is a dict it receives layer_1/2/3, rnn_fw, rnn_bw,
        layer_5 (numpy float32), for debugging against TensorFlow.
        """
        torch = _torch()
        with torch.inference_mode():
            x = torch.as_tensor(np.asarray(x, dtype=np.float32))
            l1 = self._dense(x, 1)
            l2 = self._dense(l1, 2)
            l3 = self._dense(l2, 3)
            rnn = self.bilstm_nn(l3) if self.rnn_impl == "torch" else self.bilstm(l3)
            l5 = self._dense(rnn, 5)
            logits = self._dense(l5, 6, clip=False)
            if intermediates is not None:
                cell = self.cell
                intermediates.update(
                    layer_1=l1.numpy().copy(), layer_2=l2.numpy().copy(), layer_3=l3.numpy().copy(),
                    rnn_fw=rnn[:, :cell].numpy().copy(), rnn_bw=rnn[:, cell:].numpy().copy(),
                    layer_5=l5.numpy().copy(),
                )
            return logits.numpy().copy()

    __call__ = forward


def load_deepspeech(path: str | Path) -> tuple[DeepSpeechV010, dict]:
    """Load a frozen DeepSpeech v0.1.0 model; returns (network, info dict with sizes and sha1)."""
    path = Path(path)
    weights = load_weights(path)
    net = DeepSpeechV010(weights)
    info = {"path": str(path), "sha1": sha1_of(path), **weights.sizes, "relu_clip": weights.relu_clip}
    if info["sha1"] != MODEL_SHA1:
        log.info("DeepSpeech graph %s (SHA-1 %s) is not the published %s; sizes %s",
                 path, info["sha1"], MODEL_FILENAME, weights.sizes)
    return net, info
