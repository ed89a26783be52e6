"""Shared test set-up: deterministic torch, few threads (the CI machine has 2 cores)."""
import os

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
