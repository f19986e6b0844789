"""Compute device choice: CUDA when available, else CPU; a setting or ONCOLENS_DEVICE overrides."""

from __future__ import annotations

import torch

from engine.settings import load_settings


def select_device(preference: str | None = None) -> torch.device:
    """Resolve 'auto' | 'cpu' | 'cuda' | 'cuda:N' to a usable torch.device, with a clear error if impossible."""
    choice = (preference or load_settings().device or "auto").strip().lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"Device '{choice}' was requested but CUDA is not available on this machine. "
                "Set the device to 'auto' or 'cpu' (settings or ONCOLENS_DEVICE)."
            )
        return torch.device(choice)
    if choice == "cpu":
        return torch.device("cpu")
    raise ValueError(f"Unknown device '{choice}': use auto, cpu, cuda or cuda:N.")


def describe_device(device: torch.device) -> str:
    """Short human label for the status bar, e.g. 'CUDA 0: NVIDIA H100' or 'CPU (2 threads)'."""
    if device.type == "cuda":
        index = device.index or 0
        return f"CUDA {index}: {torch.cuda.get_device_name(index)}"
    return f"CPU ({torch.get_num_threads()} threads)"
