"""Learning-rate schedule (linear warm-up, cosine decay) and the patch-size curriculum."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .config import CurriculumConfig


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Multiplier of the peak learning rate for optimiser step `step` (0-based).

    Warm-up: (step + 1) / warmup_steps, so the first step already learns; then a cosine from 1 down to
    `min_ratio` reached at the last step (total_steps - 1).
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = total_steps - 1 - warmup_steps
    if decay_steps <= 0:
        return 1.0
    progress = min(1.0, max(0.0, (step - warmup_steps) / decay_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosine:
    """A `torch.optim.lr_scheduler.LambdaLR` lambda (picklable, unlike a closure)."""

    def __init__(self, total_steps: int, warmup_steps: int, min_ratio: float) -> None:
        self.total_steps, self.warmup_steps, self.min_ratio = total_steps, warmup_steps, min_ratio

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.total_steps, self.warmup_steps, self.min_ratio)


@dataclass(frozen=True)
class Phase:
    index: int        # 0: small patches, 1: large patches
    start: int        # first step of the phase
    stop: int         # one past its last step
    patch: int
    batch: int        # per process


class Curriculum:
    """Small patches (and the larger batch) for the first `switch` fraction of the steps, then large
    patches. Also numbers the training samples: sample ids are consecutive over steps and processes, so
    a sample is a pure function of (seed, id) and a resumed run draws exactly the samples it would have."""

    def __init__(self, config: CurriculumConfig, total_steps: int, world_size: int = 1) -> None:
        self.total_steps = total_steps
        self.world_size = world_size
        switch = min(total_steps, int(round(config.switch * total_steps)))
        self.phases = [p for p in (
            Phase(0, 0, switch, config.patch_small, config.batch_small),
            Phase(1, switch, total_steps, config.patch_large, config.batch_large),
        ) if p.stop > p.start]

    def phase(self, step: int) -> Phase:
        for p in self.phases:
            if p.start <= step < p.stop:
                return p
        raise ValueError(f"step {step} is outside the schedule of {self.total_steps} steps")

    def first_sample(self, step: int, rank: int = 0) -> int:
        """Id of the first sample of process `rank` at `step`."""
        done = 0
        for p in self.phases:
            n = max(0, min(step, p.stop) - p.start)
            done += n * p.batch * self.world_size
        return done + rank * self.phase(step).batch

    def batch_ids(self, step: int, rank: int = 0) -> list[int]:
        first = self.first_sample(step, rank)
        return list(range(first, first + self.phase(step).batch))


class StepBatchSampler:
    """Batch sampler over steps [start, stop) of one phase: yields the sample ids of this process."""

    def __init__(self, curriculum: Curriculum, start: int, stop: int, rank: int = 0) -> None:
        self.curriculum, self.start, self.stop, self.rank = curriculum, start, stop, rank

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self):
        for step in range(self.start, self.stop):
            yield self.curriculum.batch_ids(step, self.rank)
