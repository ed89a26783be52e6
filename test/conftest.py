"""Shared test set-up: deterministic torch, few threads (the CI machine has 2 cores)."""
import os

# Before torch is imported: OpenMP threads that spin-wait for a descheduled partner make torch 10x
# slower on a loaded 2-core machine (measured with the ISFM scan); passive waiting costs nothing here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
