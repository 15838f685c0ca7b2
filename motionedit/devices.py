"""Where a job runs: one config serves a laptop and a GPU cluster."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """``auto`` is the first GPU when there is one, else the CPU; anything else as given."""
    if device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
