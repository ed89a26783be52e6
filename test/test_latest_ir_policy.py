"""LatestIrPolicy: every visible frame fused with the newest recent IR frame (cameras at different rates)."""
from __future__ import annotations

import pytest

from ftpfusion_ros.runtime.sync_policy import LatestIrPolicy

MS = 1_000_000  # nanoseconds
IR, VIS = 0, 1


def _play(policy: LatestIrPolicy, events: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Feed (input, stamp) events in order; the messages are their stamps. Returns the pairs formed."""
    pairs = []
    for index, stamp in events:
        out = policy.add(index, stamp, stamp)
        if out is not None:
            pairs.append(out)
    return pairs


def _streams(ir_period_ms: float, vis_period_ms: float, duration_ms: int, ir_delay_ms: int = 0) -> list[tuple[int, int]]:
    """Two free-running cameras, each message arriving at its stamp (+ ir_delay_ms for IR)."""
    events = []
    k = 0
    while k * ir_period_ms < duration_ms:
        s = int(k * ir_period_ms * MS)
        events.append((s + ir_delay_ms * MS, IR, s))
        k += 1
    k = 0
    while k * vis_period_ms < duration_ms:
        s = int(k * vis_period_ms * MS) + 1  # +1 ns: never exactly on an IR stamp
        events.append((s, VIS, s))
        k += 1
    events.sort()
    return [(i, s) for _, i, s in events]


def test_nine_hz_ir_beside_thirty_hz_visible_pairs_every_visible_frame() -> None:
    policy = LatestIrPolicy(queue_size=4, max_ir_age=0.2)
    events = _streams(1000 / 9, 1000 / 30, 3000)
    pairs = _play(policy, events)
    n_ir = sum(1 for i, _ in events if i == IR)
    n_vis = sum(1 for i, _ in events if i == VIS)
    assert (n_ir, n_vis) == (27, 90)
    assert len(pairs) == n_vis  # the visible rate, not the IR rate
    assert [v for _, v in pairs] == [s for i, s in events if i == VIS]  # in order, each once
    for ir, vis in pairs:  # the newest IR frame at or before the visible frame
        assert ir == max(s for i, s in events if i == IR and s <= vis)
    st = policy.stats
    assert st.sets_formed == 90
    assert st.ir_reused == 90 - 27  # each IR frame is new in exactly one pair, reused in the others
    assert st.dropped == [0, 0]
    assert 0 < st.ir_age_max_s <= 1 / 9 + 1e-6
    assert st.skew_abs_max_s == pytest.approx(st.ir_age_max_s)
    assert policy.queued() == [4, 0]


def test_which_ir_frame_each_visible_frame_gets() -> None:
    policy = LatestIrPolicy(queue_size=5, max_ir_age=0.2, future_tolerance=0.005)
    assert policy.add(IR, 100 * MS, "ir100") is None
    assert policy.add(IR, 200 * MS, "ir200") is None
    assert policy.add(VIS, 150 * MS, "v150") == ("ir100", "v150")  # the newest not after the visible frame
    assert policy.add(VIS, 250 * MS, "v250") == ("ir200", "v250")
    assert policy.add(VIS, 196 * MS, "v196") == ("ir200", "v196")  # 4 ms in its future: within tolerance
    assert policy.add(VIS, 190 * MS, "v190") == ("ir100", "v190")  # 10 ms in its future: not simultaneous
    assert policy.stats.ir_reused == 2
    assert policy.stats.last_ir_age_s == pytest.approx(0.09)
    assert policy.stats.ir_age_max_s == pytest.approx(0.09)
    assert policy.stats.last_skew_s == pytest.approx(-0.09)  # skew is ir - visible, as for approximate pairs


def test_too_old_or_missing_ir_is_refused_and_counted() -> None:
    policy = LatestIrPolicy(queue_size=3, max_ir_age=0.1)
    assert policy.add(VIS, 50 * MS, "v50") is None  # no IR frame yet
    policy.add(IR, 100 * MS, "ir100")
    assert policy.add(VIS, 200 * MS, "v200") == ("ir100", "v200")  # exactly max_ir_age old: still fused
    assert policy.add(VIS, 201 * MS, "v201") is None  # older than max_ir_age: refused
    policy.add(IR, 210 * MS, "ir210")
    assert policy.add(VIS, 220 * MS, "v220") == ("ir210", "v220")  # the thermal camera is back
    st = policy.stats
    assert (st.visible_no_ir, st.visible_ir_too_old) == (1, 1)
    assert st.dropped == [0, 2]
    assert st.received == [2, 4]
    assert st.sets_formed == 2
    assert st.ir_reused == 0


def test_unused_ir_frames_count_as_dropped_when_evicted() -> None:
    policy = LatestIrPolicy(queue_size=2, max_ir_age=1.0)
    for s in (10, 20, 30):
        policy.add(IR, s * MS, s)
    assert policy.stats.dropped == [1, 0]  # ir10 evicted without a pair
    assert policy.add(VIS, 35 * MS, "v") == (30, "v")
    policy.add(IR, 40 * MS, 40)  # evicts ir20, never used
    policy.add(IR, 50 * MS, 50)  # evicts ir30, used: not a drop
    assert policy.stats.dropped == [2, 0]
    policy.add(IR, 50 * MS, "again")  # same stamp replaces: the replaced frame was never used
    assert policy.stats.dropped == [3, 0]
    assert policy.add(VIS, 55 * MS, "w") == ("again", "w")


def test_discard_after_and_reset() -> None:
    policy = LatestIrPolicy(queue_size=5, max_ir_age=1.0)
    for s in (10, 20, 30):
        policy.add(IR, s * MS, s)
    assert policy.discard_after(15 * MS) == 2
    assert policy.add(VIS, 40 * MS, "v") == (10, "v")  # the frames after the jump are gone
    policy.reset()
    assert policy.queued() == [0, 0]
    assert policy.add(VIS, 50 * MS, "w") is None


def test_invalid_parameters_raise() -> None:
    for kwargs in ({"queue_size": 0}, {"max_ir_age": -0.1}, {"future_tolerance": -1.0}):
        with pytest.raises(ValueError):
            LatestIrPolicy(**kwargs)
    with pytest.raises(IndexError):
        LatestIrPolicy().add(2, 0, None)


def test_callback_receives_the_pair() -> None:
    got = []
    policy = LatestIrPolicy(callback=lambda ir, vis: got.append((ir, vis)))
    policy.add(IR, 0, "ir")
    policy.add(VIS, 10 * MS, "vis")
    assert got == [("ir", "vis")]
