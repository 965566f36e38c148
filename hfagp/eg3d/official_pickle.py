"""Reading official EG3D network pickles without executing any of their code.

Official network pickles (``ffhqrebalanced512-128.pkl`` or any EG3D training
snapshot) are a plain ``pickle.dump`` of ``{training_set_kwargs, G, D, G_ema,
augment_pipe}`` whose networks are "persistent classes": each carries its
module source code and its ``__dict__`` state. We never execute that code.
:class:`SafeNetworkUnpickler` turns every class into an inert stub that only
keeps its state, rebuilds tensors through torch's own rebuild functions
(storages are embedded legacy ``torch.save`` blobs, loaded with
``weights_only=True`` and ``map_location='cpu'``), and refuses any other global
with an error naming it. :func:`read_official_state` then flattens ``G_ema``'s
parameters and persistent buffers exactly like ``state_dict()`` and returns
them with the stored ``_init_kwargs``, ``rendering_kwargs`` and
``neural_rendering_resolution`` (the training loop re-assigns the last two
after construction). Storages are materialised lazily, so ``G`` and ``D`` cost
no memory.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hfagp.errors import HfagpError
from hfagp.io.artifacts import numpy_multiarray

OFFICIAL_GENERATOR_CLASS = "TriPlaneGenerator"


# Module prefixes whose classes become inert state-holding stubs.
STUB_MODULE_PREFIXES = ("training.", "torch.nn.modules.")


class PersistentObject:
    """Stand-in for an official ``@persistent_class`` instance: its class name and ``__dict__`` state.

    The embedded ``module_src`` is kept only as a length, never executed.
    """

    def __init__(self, meta: dict) -> None:
        if not isinstance(meta, dict) or meta.get("type") != "class":
            raise pickle.UnpicklingError("persistent object metadata is not a class record")
        self.class_name = str(meta.get("class_name"))
        self.module_src_chars = len(meta.get("module_src") or "")
        self.state = meta.get("state") or {}


class ModuleStub:
    """Stand-in for an ordinary pickled class (``training.*``, ``torch.nn.modules.*``): keeps its state."""

    qualified_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "ModuleStub":
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = {}

    def __setstate__(self, state: Any) -> None:
        # BUILD may pass (dict_state, slot_state); only the dict matters here.
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]
        self.state = state


class EasyDictStub(dict):
    """``dnnlib.util.EasyDict`` without dnnlib: a plain dict (items arrive through SETITEMS)."""


class LazyStorage:
    """An embedded legacy ``torch.save`` storage blob, decoded on first use (CPU, weights only)."""

    def __init__(self, blob: bytes) -> None:
        self._blob: bytes | None = blob
        self._storage: Any = None

    def load(self) -> Any:
        if self._storage is None:
            assert self._blob is not None
            self._storage = torch.load(io.BytesIO(self._blob), weights_only=True, map_location="cpu")
            self._blob = None
        return self._storage


class LazyTensor:
    """Arguments of ``torch._utils._rebuild_tensor_v2``, rebuilt on first use."""

    def __init__(self, storage: Any, *args: Any) -> None:
        self._storage = storage
        self._args = args
        self._tensor: torch.Tensor | None = None

    def materialize(self) -> torch.Tensor:
        if self._tensor is None:
            storage = self._storage.load() if isinstance(self._storage, LazyStorage) else self._storage
            self._tensor = torch._utils._rebuild_tensor_v2(storage, *self._args)
        return self._tensor


class LazyParameter:
    """A parameter wrapping a :class:`LazyTensor`; materialises as a plain tensor (no grad)."""

    def __init__(self, data: Any, *args: Any) -> None:
        self._data = data

    def materialize(self) -> torch.Tensor:
        return materialize(self._data)


def materialize(value: Any) -> torch.Tensor:
    """Turn a lazy tensor/parameter (or a real tensor) into a detached CPU tensor."""
    if isinstance(value, (LazyTensor, LazyParameter)):
        value = value.materialize()
    if not isinstance(value, torch.Tensor):
        raise pickle.UnpicklingError(f"expected a tensor, found {type(value).__name__}")
    return value.detach()


_TORCH_DTYPE_NAMES = {
    "float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool",
}


class SafeNetworkUnpickler(pickle.Unpickler):
    """Unpickler that resolves only a fixed whitelist of globals and stubs network classes."""

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self._stub_classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch_utils.persistence" and name == "_reconstruct_persistent_obj":
            return PersistentObject
        if module == "dnnlib.util" and name == "EasyDict":
            return EasyDictStub
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return LazyTensor
        if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
            return LazyParameter
        if module == "torch.storage" and name == "_load_from_bytes":
            return LazyStorage
        if module == "torch" and name in _TORCH_DTYPE_NAMES:
            return getattr(torch, name)
        if module == "numpy" and name == "dtype":
            return np.dtype
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("scalar", "_reconstruct"):
            return numpy_multiarray(name)
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module.startswith(STUB_MODULE_PREFIXES) and name.isidentifier():
            qualified = f"{module}.{name}"
            if qualified not in self._stub_classes:
                self._stub_classes[qualified] = type(name, (ModuleStub,), {"qualified_name": qualified})
            return self._stub_classes[qualified]
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} (not on the EG3D whitelist)")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("unexpected persistent id (not an EG3D network pickle)")


@dataclass
class OfficialGeneratorState:
    """What we take from an official pickle's ``G_ema``."""

    class_name: str
    init_args: tuple
    init_kwargs: dict
    rendering_kwargs: dict
    neural_rendering_resolution: int
    state_dict: "collections.OrderedDict[str, torch.Tensor]"


def _plain(value: Any) -> Any:
    """EasyDicts/OrderedDicts/tuples -> plain dicts/lists/scalars (numpy scalars -> Python)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _state_of(obj: Any) -> dict:
    if isinstance(obj, PersistentObject):
        return obj.state
    if isinstance(obj, ModuleStub) and isinstance(obj.state, dict):
        return obj.state
    raise pickle.UnpicklingError(f"expected a network module, found {type(obj).__name__}")


def flatten_module_state(obj: Any, prefix: str = "") -> "collections.OrderedDict[str, torch.Tensor]":
    """Collect parameters, persistent buffers and submodules recursively, in ``state_dict()`` order."""
    out: collections.OrderedDict[str, torch.Tensor] = collections.OrderedDict()
    state = _state_of(obj)
    for name, param in (state.get("_parameters") or {}).items():
        if param is not None:
            out[prefix + name] = materialize(param)
    non_persistent = state.get("_non_persistent_buffers_set") or set()
    for name, buf in (state.get("_buffers") or {}).items():
        if buf is not None and name not in non_persistent:
            out[prefix + name] = materialize(buf)
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(flatten_module_state(child, prefix + name + "."))
    return out


def read_official_state(path: str | os.PathLike) -> OfficialGeneratorState:
    """Read ``G_ema`` from an official EG3D network pickle without executing any of its code."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = SafeNetworkUnpickler(fh).load()
    except (
        pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError,
        MemoryError,
    ) as exc:
        raise HfagpError(
            f"{path}: cannot read it as an EG3D network pickle ({type(exc).__name__}: {exc}). "
            "Point the config at an official EG3D snapshot (e.g. ffhqrebalanced512-128.pkl) or an hfagp-eg3d checkpoint."
        ) from exc
    except RuntimeError as exc:  # torch failing on an embedded storage blob
        raise HfagpError(f"{path}: a tensor in the network pickle is unreadable ({exc}); the file may be corrupt.") from exc
    if not isinstance(data, dict) or "G_ema" not in data:
        found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise HfagpError(
            f"{path}: no 'G_ema' in this pickle (found {found}); an EG3D training snapshot holds "
            "G, D and G_ema. Use an official network pickle or an hfagp-eg3d checkpoint."
        )
    g_ema = data["G_ema"]
    if not isinstance(g_ema, PersistentObject):
        raise HfagpError(f"{path}: 'G_ema' is not a persistent network object; not an EG3D network pickle.")
    if g_ema.class_name != OFFICIAL_GENERATOR_CLASS:
        raise HfagpError(
            f"{path}: 'G_ema' is a {g_ema.class_name}, not an EG3D {OFFICIAL_GENERATOR_CLASS}; "
            "only EG3D tri-plane generators are supported."
        )
    state = g_ema.state
    try:
        state_dict = flatten_module_state(g_ema)
    except Exception as exc:  # torch.load of a damaged storage blob raises many types
        raise HfagpError(
            f"{path}: cannot rebuild G_ema's tensors ({type(exc).__name__}: {exc}); the file may be corrupt."
        ) from exc
    init_kwargs = _plain(state.get("_init_kwargs") or {})
    rendering_kwargs = _plain(state.get("rendering_kwargs", init_kwargs.get("rendering_kwargs")))
    if not isinstance(rendering_kwargs, dict):
        raise HfagpError(f"{path}: G_ema carries no rendering_kwargs; not an EG3D generator.")
    nrr = state.get("neural_rendering_resolution")
    if not isinstance(nrr, (int, np.integer)):
        raise HfagpError(f"{path}: G_ema carries no integer neural_rendering_resolution (found {nrr!r}).")
    return OfficialGeneratorState(
        class_name=g_ema.class_name,
        init_args=tuple(_plain(list(state.get("_init_args") or ()))),
        init_kwargs=init_kwargs,
        rendering_kwargs=rendering_kwargs,
        neural_rendering_resolution=int(nrr),
        state_dict=state_dict,
    )
