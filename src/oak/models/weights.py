"""Loading weights without running code from the file.

Accepts a Lightning checkpoint (`state_dict` with `net.` prefixes; its EMA weights when it holds
them, as timm evaluates), a plain state_dict (a `module.` prefix from DDP is dropped) or a
safetensors file. Pickles are read with
`weights_only=True`, which refuses any object but tensors and plain containers.
"""

import os
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from oak.errors import OakError

PREFIXES = ("net.", "module.")
EMA_PREFIX = "ema.module."


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise OakError(f"{path}: weights file not found")
    if not os.access(path, os.R_OK):
        raise OakError(f"{path}: weights file not readable (permission denied); check its permissions")
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
        except SafetensorError as error:
            raise OakError(f"{path}: not a readable safetensors file ({error}); check the file, or download it again") from None
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError):
        # PyTorch's own message suggests weights_only=False, which would run the file's code: never quoted.
        raise OakError(
            f"{path}: refused, not a file of tensors only (a pickle that holds more than weights, or not a PyTorch file at all); "
            "load a state_dict, a Lightning checkpoint or a .safetensors file"
        ) from None
    state = content.get("state_dict", content) if isinstance(content, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OakError(f"{path}: not a state_dict or Lightning checkpoint")
    return state


def network_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The EMA weights when there are any, named as the bare network knows them (without `net.` or `module.`)."""
    ema = {name.removeprefix(EMA_PREFIX): value for name, value in state.items() if name.startswith(EMA_PREFIX)}
    network = {name: value for name, value in state.items() if name.startswith("net.")}
    if ema or network:  # a Lightning checkpoint: also holds the training metrics' running sums
        state = ema or network
    for prefix in PREFIXES:
        if state and all(name.startswith(prefix) for name in state):
            state = {name.removeprefix(prefix): value for name, value in state.items()}
    return state


def load_weights(net: nn.Module, path: Path) -> None:
    """Load `path` into `net`; every tensor must match by name and shape."""
    state = network_state(read_state_dict(path))
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(name for name in set(state) & set(expected) if state[name].shape != expected[name].shape)
    if missing or unexpected or wrong_shape:
        details = "; ".join(
            f"{label}: {', '.join(names[:3])}{'...' if len(names) > 3 else ''}"
            for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape))
            if names
        )
        raise OakError(f"{path}: weights do not fit {type(net).__name__} ({details}); check the model name and the number of classes")
    net.load_state_dict(state)
