"""The package's approximate-time policy (used where message_filters is not installed).

Its contract is message_filters' Python ApproximateTimeSynchronizer semantics for two inputs; the last
test checks that equivalence directly when message_filters is importable (a ROS install).
"""
from __future__ import annotations

import random

import pytest

from ftpfusion_ros.runtime.sync_policy import (
    NS_PER_S,
    ApproximateTimePolicy,
    ns_to_sec_nanosec,
    stamp_to_ns,
)

MS = 1_000_000  # nanoseconds


def test_pairs_are_emitted_in_input_order_whatever_the_arrival_order() -> None:
    policy = ApproximateTimePolicy(2, queue_size=5, slop=0.02)
    assert policy.add(1, 100 * MS, "vis@100") is None
    assert policy.add(0, 105 * MS, "ir@105") == ("ir@105", "vis@100")
    assert policy.queued() == [0, 0]
    assert policy.stats.sets_formed == 1
    assert policy.stats.last_skew_s == pytest.approx(0.005)  # ir - visible, signed


def test_the_closest_candidate_within_slop_wins_and_the_other_stays_queued() -> None:
    policy = ApproximateTimePolicy(2, queue_size=5, slop=0.02)
    policy.add(0, 90 * MS, "ir@90")
    policy.add(0, 104 * MS, "ir@104")
    assert policy.add(1, 100 * MS, "vis@100") == ("ir@104", "vis@100")
    assert policy.queued() == [1, 0]
    # The leftover IR frame pairs with a later visible frame within slop.
    assert policy.add(1, 95 * MS, "vis@95") == ("ir@90", "vis@95")
    assert policy.stats.last_skew_s == pytest.approx(-0.005)


def test_slop_is_strict() -> None:
    policy = ApproximateTimePolicy(2, queue_size=5, slop=0.01)
    policy.add(0, 0, "ir@0")
    assert policy.add(1, 10 * MS, "vis@10") is None  # exactly slop apart: not a pair
    assert policy.add(1, 9 * MS, "vis@9") == ("ir@0", "vis@9")
    assert policy.stats.skew_abs_max_s == pytest.approx(0.009)


def test_queue_overflow_drops_the_oldest_and_counts_it() -> None:
    policy = ApproximateTimePolicy(2, queue_size=3, slop=0.01)
    for k in range(5):  # the visible camera is silent
        assert policy.add(0, k * 100 * MS, f"ir{k}") is None
    assert policy.queued() == [3, 0]
    assert policy.stats.dropped == [2, 0]
    assert policy.stats.received == [5, 0]
    # ir0 and ir1 are gone: a visible frame at their time finds nothing.
    assert policy.add(1, 0, "vis@0") is None
    assert policy.add(1, 400 * MS, "vis@400") == ("ir4", "vis@400")


def test_a_late_message_older_than_a_full_queue_is_evicted_at_once() -> None:
    policy = ApproximateTimePolicy(2, queue_size=2, slop=0.05)
    policy.add(1, 200 * MS, "vis@200")
    policy.add(1, 300 * MS, "vis@300")
    policy.add(1, 10 * MS, "vis@10")  # oldest of three: evicted immediately
    assert policy.stats.dropped == [0, 1]
    assert policy.add(0, 20 * MS, "ir@20") is None  # its partner is gone


def test_same_stamp_replaces_and_counts_a_drop() -> None:
    policy = ApproximateTimePolicy(2, queue_size=4, slop=0.01)
    policy.add(0, 50 * MS, "first")
    policy.add(0, 50 * MS, "second")
    assert policy.stats.dropped == [1, 0]
    assert policy.add(1, 50 * MS, "vis") == ("second", "vis")


def test_callback_style_and_reset() -> None:
    got: list[tuple] = []
    policy = ApproximateTimePolicy(2, queue_size=4, slop=0.01, callback=lambda a, b: got.append((a, b)))
    policy.add(0, 0, "a")
    policy.add(1, 1 * MS, "b")
    assert got == [("a", "b")]
    policy.add(0, 100 * MS, "c")
    policy.reset()
    assert policy.queued() == [0, 0] and policy.stats.dropped == [1, 0]


def test_discard_after_drops_future_frames_only() -> None:
    policy = ApproximateTimePolicy(2, queue_size=3, slop=0.01)
    for k in (5, 6, 7):
        policy.add(1, k * NS_PER_S, f"vis{k}")
    policy.add(0, 1 * NS_PER_S, "ir1")
    # the visible queue is full of later frames: an older visible frame is evicted on arrival ...
    assert policy.add(1, 1 * NS_PER_S, "vis1") is None and policy.queued() == [1, 3]
    # ... until the frames after the jump are discarded
    assert policy.discard_after(2 * NS_PER_S) == 3
    assert policy.stats.dropped == [0, 4]
    assert policy.add(1, 1 * NS_PER_S, "vis1") == ("ir1", "vis1")


@pytest.mark.parametrize("kwargs", [{"n_inputs": 0}, {"queue_size": 0}, {"slop": -1.0}])
def test_invalid_parameters_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ApproximateTimePolicy(**kwargs)


def test_stamp_helpers_round_trip() -> None:
    class T:
        sec, nanosec = 12, 345

    assert stamp_to_ns(T()) == 12 * NS_PER_S + 345
    assert ns_to_sec_nanosec(12 * NS_PER_S + 345) == (12, 345)


def _jittered_streams(seed: int, n: int = 300) -> list[tuple[int, int]]:
    """Two 30 Hz cameras with stamp jitter, random arrival interleaving and occasional losses."""
    rng = random.Random(seed)
    events: list[tuple[float, int, int]] = []  # (arrival time, input, stamp_ns)
    for k in range(n):
        t = k / 30.0
        for i in (0, 1):
            if rng.random() < 0.05:
                continue  # lost frame
            stamp = int((100.0 + t + rng.uniform(-0.012, 0.012) + (0.004 if i == 0 else 0.0)) * NS_PER_S)
            events.append((t + rng.uniform(0.0, 0.05), i, stamp))
    events.sort()
    return [(i, stamp) for _, i, stamp in events]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_streams_pair_each_message_at_most_once_within_slop(seed: int) -> None:
    slop = 0.02
    policy = ApproximateTimePolicy(2, queue_size=6, slop=slop)
    used: set[tuple[int, int]] = set()
    pairs = 0
    for i, stamp in _jittered_streams(seed):
        out = policy.add(i, stamp, (i, stamp))
        if out is None:
            continue
        pairs += 1
        (i0, s0), (i1, s1) = out
        assert (i0, i1) == (0, 1)
        assert abs(s0 - s1) < slop * NS_PER_S
        assert (i0, s0) not in used and (i1, s1) not in used
        used.update(out)
    assert pairs > 200  # most frames pair up despite jitter and losses
    st = policy.stats
    # Conservation: every received message is paired, dropped or still queued.
    for i in (0, 1):
        assert st.received[i] == st.sets_formed + st.dropped[i] + policy.queued()[i]


@pytest.mark.parametrize("seed", [3, 4])
def test_same_pairs_as_message_filters(seed: int) -> None:
    """Differential check against message_filters' ApproximateTimeSynchronizer (where installed)."""
    message_filters = pytest.importorskip("message_filters")
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    class Msg:
        def __init__(self, stamp_ns: int, tag: tuple[int, int]) -> None:
            sec, nanosec = ns_to_sec_nanosec(stamp_ns)
            self.header = Header(stamp=Time(sec=sec, nanosec=nanosec))
            self.tag = tag

    inputs = [message_filters.SimpleFilter(), message_filters.SimpleFilter()]
    reference: list[tuple] = []
    sync = message_filters.ApproximateTimeSynchronizer(inputs, 5, 0.012)
    sync.registerCallback(lambda a, b: reference.append((a.tag, b.tag)))
    ours: list[tuple] = []
    policy = ApproximateTimePolicy(2, queue_size=5, slop=0.012)
    for i, stamp in _jittered_streams(seed):
        inputs[i].signalMessage(Msg(stamp, (i, stamp)))
        out = policy.add(i, stamp, (i, stamp))
        if out is not None:
            ours.append(out)
    assert len(reference) > 100
    assert ours == reference
