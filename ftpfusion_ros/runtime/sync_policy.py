"""Pairing of timestamped IR/visible messages, ROS-free: approximate time, or latest IR.

The sync node uses ``message_filters.ApproximateTimeSynchronizer`` when it is importable (a normal ROS
install) and this policy otherwise (pip-only environments, where message_filters is not packaged). The
semantics are those of message_filters' Python ApproximateTimeSynchronizer, so that a node behaves the
same either way:

- each input keeps a queue of at most ``queue_size`` messages keyed by stamp (a second message with
  the same stamp on the same input replaces the first); when a queue overflows, its oldest stamp is
  discarded;
- when a message arrives on input i (stamp t), the other inputs' queued stamps within ``slop`` of t are
  candidates, tried closest first; the first combination whose spread (max stamp - min stamp) is
  strictly below ``slop`` is emitted, in input order, and its messages leave their queues;
- messages are not discarded when a later set is emitted; they leave only by overflow (or reset).

For cameras at different rates, ``LatestIrPolicy`` pairs every visible frame with the newest recent IR
frame instead (see its docstring).

Stamps are integer nanoseconds (``Time.nanoseconds`` in rclpy). Besides pairing, the policy keeps the
statistics the node reports: sets formed, messages dropped (evicted unpaired or replaced) and skew.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

NS_PER_S = 1_000_000_000


@dataclass
class SyncStats:
    """Counters of a synchroniser: what came in, what was paired, what was lost, and how far apart."""

    received: list[int]
    sets_formed: int = 0
    dropped: list[int] = field(default_factory=list)
    skew_sum_s: float = 0.0
    skew_abs_max_s: float = 0.0
    last_skew_s: float = 0.0

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped)

    @property
    def skew_mean_s(self) -> float:
        return self.skew_sum_s / self.sets_formed if self.sets_formed else 0.0

    def record_set(self, stamps_ns: Sequence[int]) -> float:
        """Record a formed set; returns its skew (stamps[0] - stamps[1], seconds; 0 for one input)."""
        skew = (stamps_ns[0] - stamps_ns[1]) / NS_PER_S if len(stamps_ns) > 1 else 0.0
        self.sets_formed += 1
        self.skew_sum_s += skew
        self.skew_abs_max_s = max(self.skew_abs_max_s, abs(skew))
        self.last_skew_s = skew
        return skew

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": list(self.received),
            "sets_formed": self.sets_formed,
            "dropped": list(self.dropped),
            "dropped_total": self.dropped_total,
            "skew_mean_s": self.skew_mean_s,
            "skew_abs_max_s": self.skew_abs_max_s,
            "last_skew_s": self.last_skew_s,
        }


class ApproximateTimePolicy:
    """Approximate-time synchroniser over ``n_inputs`` streams (message_filters' Python semantics).

    ``add(index, stamp_ns, msg)`` returns the tuple of messages (one per input, in input order) when the
    arrival completes a set, else None. Optionally ``callback(*msgs)`` is called with the same tuple
    (the message_filters style). Thread-safe: a multi-threaded executor may call add() concurrently.
    """

    def __init__(
        self,
        n_inputs: int = 2,
        queue_size: int = 10,
        slop: float = 0.05,
        callback: Callable[..., Any] | None = None,
    ) -> None:
        if n_inputs < 1:
            raise ValueError(f"n_inputs must be >= 1, got {n_inputs}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if slop < 0:
            raise ValueError(f"slop must be >= 0 seconds, got {slop}")
        self.n_inputs = n_inputs
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(slop * NS_PER_S))
        self.callback = callback
        self._queues: list[dict[int, Any]] = [{} for _ in range(n_inputs)]
        self._lock = threading.Lock()
        self.stats = SyncStats(received=[0] * n_inputs, dropped=[0] * n_inputs)

    @property
    def slop(self) -> float:
        return self.slop_ns / NS_PER_S

    def queued(self) -> list[int]:
        """Messages currently waiting in each input's queue."""
        with self._lock:
            return [len(q) for q in self._queues]

    def reset(self) -> None:
        """Forget queued messages (e.g. after a jump back in time); statistics are kept."""
        with self._lock:
            for i, q in enumerate(self._queues):
                self.stats.dropped[i] += len(q)
                q.clear()

    def discard_after(self, stamp_ns: int) -> int:
        """Drop queued messages stamped after ``stamp_ns`` (counted as dropped); returns how many.

        For time jumping back (a bag looping): frames from before the jump would otherwise stay queued
        as the 'newest' and make every new frame the oldest one, evicted on arrival when a queue is full.
        """
        with self._lock:
            return discard_after(self._queues, stamp_ns, self.stats.dropped)

    def add(self, index: int, stamp_ns: int, msg: Any) -> tuple | None:
        if not 0 <= index < self.n_inputs:
            raise IndexError(f"input index {index} out of range for {self.n_inputs} inputs")
        stamp_ns = int(stamp_ns)
        with self._lock:
            matched = self._add_locked(index, stamp_ns, msg)
        if matched is not None and self.callback is not None:
            self.callback(*matched)
        return matched

    def _add_locked(self, index: int, stamp_ns: int, msg: Any) -> tuple | None:
        stats = self.stats
        stats.received[index] += 1
        queue = self._queues[index]
        if stamp_ns in queue:
            stats.dropped[index] += 1  # replaced by a message with the same stamp
        queue[stamp_ns] = msg
        while len(queue) > self.queue_size:
            del queue[min(queue)]
            stats.dropped[index] += 1
        if stamp_ns not in queue:
            return None  # the new message was itself the oldest and was evicted

        # Candidates of the other inputs within slop of the new stamp, closest first (sorted() is stable:
        # equal distances keep queue insertion order, as in message_filters).
        candidates: list[list[int]] = []
        for j, other in enumerate(self._queues):
            if j == index:
                continue
            near = [(s, abs(s - stamp_ns)) for s in other if abs(s - stamp_ns) <= self.slop_ns]
            if not near:
                return None
            candidates.append([s for s, _ in sorted(near, key=lambda sd: sd[1])])

        for combo in itertools.product(*candidates):
            stamps = list(combo)
            stamps.insert(index, stamp_ns)
            if max(stamps) - min(stamps) < self.slop_ns:
                msgs = tuple(q.pop(s) for q, s in zip(self._queues, stamps))
                stats.record_set(stamps)
                return msgs
        return None


@dataclass
class LatestIrStats(SyncStats):
    """SyncStats plus what latest-IR pairing adds: how often an IR frame was used again, how old the IR
    frames were, and why visible frames went unpaired."""

    ir_reused: int = 0               # pairs whose IR frame was already used by an earlier pair
    visible_no_ir: int = 0           # visible frames refused: no IR frame received yet (or all too new)
    visible_ir_too_old: int = 0      # visible frames refused: the newest IR frame was older than max_ir_age
    ir_age_sum_s: float = 0.0
    ir_age_max_s: float = 0.0
    last_ir_age_s: float = 0.0

    @property
    def ir_age_mean_s(self) -> float:
        return self.ir_age_sum_s / self.sets_formed if self.sets_formed else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = super().as_dict()
        out.update(ir_reused=self.ir_reused, visible_no_ir=self.visible_no_ir,
                   visible_ir_too_old=self.visible_ir_too_old, ir_age_mean_s=self.ir_age_mean_s,
                   ir_age_max_s=self.ir_age_max_s, last_ir_age_s=self.last_ir_age_s)
        return out


class LatestIrPolicy:
    """Pairs every visible frame with the newest IR frame that is recent enough (cameras at different rates).

    A thermal camera often runs far slower than the visible one (a Lepton at 9 Hz beside a 30 Hz RGB
    camera). Approximate-time pairing then yields at most the IR rate; here each visible frame is fused
    with the newest IR frame instead, so the output keeps the visible rate and an IR frame is reused
    by several pairs. Rules (input 0 is IR, input 1 visible, as in the sync node):

    - IR frames are kept (the newest ``queue_size``, keyed by stamp) and are not consumed by a pair;
    - a visible frame stamped t is paired at once with the IR frame of the largest stamp s with
      ``s <= t + future_tolerance`` (an IR frame stamped a little after the visible one, within the
      tolerance, counts as simultaneous; later ones are the future of this visible frame);
    - if that IR frame is older than ``max_ir_age`` (t - s > max_ir_age), or there is none, the visible
      frame is refused (counted) rather than fused with a stale or absent thermal image;
    - visible frames are never queued: a pair is decided when the visible frame arrives, so the output
      follows the visible stream's order and latency.

    ``add(index, stamp_ns, msg)`` returns (ir_msg, visible_msg) or None, like ApproximateTimePolicy.
    Dropped IR frames are those evicted without ever being used; dropped visible frames are the refused.
    """

    n_inputs = 2

    def __init__(self, queue_size: int = 10, max_ir_age: float = 0.2, future_tolerance: float = 0.0,
                 callback: Callable[..., Any] | None = None) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if max_ir_age < 0:
            raise ValueError(f"max_ir_age must be >= 0 seconds, got {max_ir_age}")
        if future_tolerance < 0:
            raise ValueError(f"future_tolerance must be >= 0 seconds, got {future_tolerance}")
        self.queue_size = int(queue_size)
        self.max_ir_age_ns = int(round(max_ir_age * NS_PER_S))
        self.future_ns = int(round(future_tolerance * NS_PER_S))
        self.callback = callback
        self._ir: dict[int, Any] = {}
        self._used: set[int] = set()  # stamps of kept IR frames that some pair has used
        self._lock = threading.Lock()
        self.stats = LatestIrStats(received=[0, 0], dropped=[0, 0])

    @property
    def max_ir_age(self) -> float:
        return self.max_ir_age_ns / NS_PER_S

    def queued(self) -> list[int]:
        """IR frames kept for reuse, and visible frames waiting (always 0: they are never queued)."""
        with self._lock:
            return [len(self._ir), 0]

    def _forget_ir(self, stamp_ns: int) -> None:
        del self._ir[stamp_ns]
        if stamp_ns in self._used:
            self._used.discard(stamp_ns)
        else:
            self.stats.dropped[0] += 1  # an IR frame that never made it into a pair

    def reset(self) -> None:
        with self._lock:
            for s in list(self._ir):
                self._forget_ir(s)

    def discard_after(self, stamp_ns: int) -> int:
        """Forget kept IR frames stamped after ``stamp_ns`` (time jumped back); returns how many."""
        with self._lock:
            late = [s for s in self._ir if s > stamp_ns]
            for s in late:
                self._forget_ir(s)
            return len(late)

    def add(self, index: int, stamp_ns: int, msg: Any) -> tuple | None:
        if index not in (0, 1):
            raise IndexError(f"input index {index} out of range for 2 inputs")
        stamp_ns = int(stamp_ns)
        with self._lock:
            matched = self._add_ir(stamp_ns, msg) if index == 0 else self._add_visible(stamp_ns, msg)
        if matched is not None and self.callback is not None:
            self.callback(*matched)
        return matched

    def _add_ir(self, stamp_ns: int, msg: Any) -> None:
        self.stats.received[0] += 1
        if stamp_ns in self._ir:
            self._forget_ir(stamp_ns)  # replaced by a message with the same stamp
        self._ir[stamp_ns] = msg
        while len(self._ir) > self.queue_size:
            self._forget_ir(min(self._ir))
        return None

    def _add_visible(self, stamp_ns: int, msg: Any) -> tuple | None:
        stats = self.stats
        stats.received[1] += 1
        eligible = [s for s in self._ir if s <= stamp_ns + self.future_ns]
        if not eligible:
            stats.visible_no_ir += 1
            stats.dropped[1] += 1
            return None
        ir_stamp = max(eligible)
        age_ns = stamp_ns - ir_stamp
        if age_ns > self.max_ir_age_ns:
            stats.visible_ir_too_old += 1
            stats.dropped[1] += 1
            return None
        if ir_stamp in self._used:
            stats.ir_reused += 1
        self._used.add(ir_stamp)
        stats.record_set([ir_stamp, stamp_ns])
        age = age_ns / NS_PER_S
        stats.ir_age_sum_s += age
        stats.ir_age_max_s = max(stats.ir_age_max_s, age)
        stats.last_ir_age_s = age
        return self._ir[ir_stamp], msg


def discard_after(queues: Sequence[dict[int, Any]], stamp_ns: int, dropped: list[int] | None = None) -> int:
    """Remove entries stamped after ``stamp_ns`` from stamp-keyed queues (this policy's, or
    message_filters' ``ApproximateTimeSynchronizer.queues``, which have the same layout)."""
    removed = 0
    for i, queue in enumerate(queues):
        late = [s for s in queue if s > stamp_ns]
        for s in late:
            del queue[s]
        if dropped is not None:
            dropped[i] += len(late)
        removed += len(late)
    return removed


def stamp_to_ns(stamp: Any) -> int:
    """Nanoseconds of a builtin_interfaces/Time-like object (``sec``/``nanosec``) or an int."""
    if isinstance(stamp, int):
        return stamp
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_sec_nanosec(ns: int) -> tuple[int, int]:
    """Split nanoseconds into (sec, nanosec) as builtin_interfaces/Time stores them (nanosec >= 0)."""
    sec, nanosec = divmod(int(ns), NS_PER_S)
    return sec, nanosec


__all__ = ["ApproximateTimePolicy", "LatestIrPolicy", "LatestIrStats", "SyncStats", "discard_after", "stamp_to_ns", "ns_to_sec_nanosec", "NS_PER_S"]
