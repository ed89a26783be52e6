"""Temporally stable mapping of thermal frames to [0, 1] (automatic gain control).

Per-frame min-max scaling makes video flicker — exactly what video fusion exists to remove — so
16-bit/float thermal data is mapped with a window [lo, hi] that is either fixed (radiometric) or
follows robust percentiles through an exponential moving average.

Radiometric cameras: ``ir_unit`` says what the frame values are (``counts`` without temperature meaning,
``centikelvin`` for a Lepton's TLinear 16-bit output, ``kelvin`` / ``celsius`` for 32FC1 temperature
images), and ``window_unit`` the unit of a fixed window, so that ``fixed_low: 15, fixed_high: 40,
window_unit: celsius`` maps 15..40 °C to black..white whatever the camera's unit (steady across scenes:
no flicker by construction).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .encodings import InputError

#: share of a frame's pixels that must lie inside the current window for smoothing to go on; below it
#: the window is re-acquired at once (a hot object entering the view leaves most pixels inside)
REACQUIRE_INSIDE = 0.1

AGC_MODES = ("percentile", "fixed")
#: the camera's values: raw counts, or a temperature unit (centikelvin: TLinear 16-bit; 32FC1: kelvin/celsius)
IR_UNITS = ("counts", "centikelvin", "kelvin", "celsius")
#: unit of fixed_low/fixed_high: the camera's own values, or a temperature converted to them
WINDOW_UNITS = ("raw", "kelvin", "celsius")
ZERO_CELSIUS_K = 273.15


def temperature_to_raw(value: float, unit: str, ir_unit: str) -> float:
    """A temperature in ``unit`` (kelvin | celsius) as a value of a camera whose values are ``ir_unit``."""
    kelvin = value + ZERO_CELSIUS_K if unit == "celsius" else value
    if ir_unit == "centikelvin":
        return kelvin * 100.0
    if ir_unit == "kelvin":
        return kelvin
    if ir_unit == "celsius":
        return kelvin - ZERO_CELSIUS_K
    raise ValueError(f"a window in {unit} needs a radiometric ir_unit (centikelvin, kelvin or celsius), "
                     f"not {ir_unit!r}")


@dataclass
class AGCConfig:
    mode: str = "percentile"      # "percentile" (smoothed) | "fixed"
    low_percentile: float = 1.0
    high_percentile: float = 99.0
    smoothing: float = 0.1        # EMA weight of the newest frame's percentiles (0 < s <= 1)
    max_step: float = 0.04        # a bound moves at most this fraction of the window's span per frame
    fixed_low: float = 0.0        # "fixed" window, in window_unit
    fixed_high: float = 65535.0
    ir_unit: str = "counts"       # the camera's values: counts | centikelvin | kelvin | celsius
    window_unit: str = "raw"      # unit of fixed_low/fixed_high: raw (the camera's values) | kelvin | celsius
    min_span: float = 16.0        # never stretch less than this many counts (avoids amplifying noise)
    subsample: int = 4            # percentiles on every n-th pixel: a 16x cheaper estimate, same result

    def __post_init__(self) -> None:
        if self.mode not in AGC_MODES:
            raise ValueError(f"AGC mode must be 'percentile' or 'fixed', got {self.mode!r}")
        if self.ir_unit not in IR_UNITS:
            raise ValueError(f"AGC ir_unit must be one of {', '.join(IR_UNITS)}, got {self.ir_unit!r}")
        if self.window_unit not in WINDOW_UNITS:
            raise ValueError(f"AGC window_unit must be one of {', '.join(WINDOW_UNITS)}, got {self.window_unit!r}")
        if self.window_unit != "raw" and self.ir_unit == "counts":
            raise ValueError(f"AGC window_unit {self.window_unit!r} needs a radiometric ir_unit (centikelvin, "
                             "kelvin or celsius): raw counts have no temperature")
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError(f"AGC smoothing must be in (0, 1], got {self.smoothing}")
        if not self.max_step > 0.0:
            raise ValueError(f"AGC max_step must be > 0, got {self.max_step}")
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise ValueError("AGC percentiles must satisfy 0 <= low < high <= 100")
        if self.mode == "fixed" and not self.fixed_high > self.fixed_low:
            raise ValueError("AGC fixed window needs fixed_high > fixed_low")

    def fixed_window_raw(self) -> tuple[float, float]:
        """The fixed window in the camera's own values (temperatures converted)."""
        if self.window_unit == "raw":
            return float(self.fixed_low), float(self.fixed_high)
        return (temperature_to_raw(self.fixed_low, self.window_unit, self.ir_unit),
                temperature_to_raw(self.fixed_high, self.window_unit, self.ir_unit))


class ThermalAGC:
    """Maps raw thermal frames (any bit depth) to float32 [0, 1] with a temporally smoothed window."""

    def __init__(self, config: AGCConfig | None = None) -> None:
        self.config = config or AGCConfig()
        self.window: tuple[float, float] | None = None

    def reset(self) -> None:
        self.window = None

    def reconfigure(self, config: AGCConfig) -> None:
        """Take a new configuration from the next frame on (e.g. a parameter changed at run time). The
        smoothed window is kept when only the smoothing parameters change, restarted otherwise."""
        old = self.config
        self.config = config
        if (old.mode, old.ir_unit, old.low_percentile, old.high_percentile) != (
                config.mode, config.ir_unit, config.low_percentile, config.high_percentile):
            self.window = None

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        cfg = self.config
        data = raw.astype(np.float32, copy=False)
        if raw.dtype.kind == "f" and not np.isfinite(data).any():
            # bad input, not an internal error: there is nothing to map (nor to show)
            raise InputError("IR image: thermal frame has no finite values (all NaN/inf)")
        if cfg.mode == "fixed":
            lo, hi = cfg.fixed_window_raw()
        else:
            lo, hi = self._update(data)
            if hi - lo < cfg.min_span:
                mid = 0.5 * (lo + hi)
                lo, hi = mid - cfg.min_span / 2, mid + cfg.min_span / 2
        out = (data - lo) * (1.0 / (hi - lo))
        # NaN pixels (invalid radiometric readings) map to 0; +-inf clip to the window's ends
        return np.clip(np.nan_to_num(out, nan=0.0, copy=False), 0.0, 1.0, out=out)

    def _update(self, data: np.ndarray) -> tuple[float, float]:
        """The window for this frame (and the state for the next one)."""
        cfg = self.config
        sample = data[:: cfg.subsample, :: cfg.subsample]
        finite = sample[np.isfinite(sample)]
        if finite.size == 0:  # a sparse frame may have its finite pixels off the sample grid
            finite = data[np.isfinite(data)]
        p_lo, p_hi = (float(v) for v in np.percentile(finite, (cfg.low_percentile, cfg.high_percentile)))
        if p_hi - p_lo < cfg.min_span:
            # A flat frame (all-zero at start-up, a flat-field correction shutter frame) says nothing
            # about the scene: map it with the window held so far and keep that window, so that one
            # such frame cannot collapse the window and with it the step limit below.
            if self.window is not None:
                return self.window
            return p_lo, p_hi  # not stored: the first frame with contrast sets the window
        if self.window is None or self._outside(finite):
            # Nothing to smooth from (first frame, or a scene almost entirely outside the current
            # window, e.g. after an encoding or unit switch): take the new percentiles at once instead
            # of crawling there at max_step per frame with the picture saturated meanwhile.
            self.window = (p_lo, p_hi)
            return self.window
        # EMA towards the new percentiles, rate-limited relative to the current span: a hot object
        # entering the view widens the window over ~a second instead of darkening the scene at once
        old_lo, old_hi = self.window
        step = cfg.max_step * max(old_hi - old_lo, cfg.min_span)
        lo = old_lo + float(np.clip(cfg.smoothing * (p_lo - old_lo), -step, step))
        hi = old_hi + float(np.clip(cfg.smoothing * (p_hi - old_hi), -step, step))
        self.window = (lo, hi)
        return self.window

    def _outside(self, values: np.ndarray) -> bool:
        """True when fewer than REACQUIRE_INSIDE of the (sampled) pixels lie inside the current window:
        the picture would be clipped to black or white almost everywhere."""
        lo, hi = self.window
        pad = max(0.0, self.config.min_span - (hi - lo)) / 2  # the window as applied (min_span)
        lo, hi = lo - pad, hi + pad
        inside = np.count_nonzero((values >= lo) & (values <= hi))
        return inside < REACQUIRE_INSIDE * values.size
