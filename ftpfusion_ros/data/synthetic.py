"""Synthetic dual-camera scene: a registered thermal + low-light visible video with moving warm targets.

What it models (enough to exercise fusion, the runtime and the ROS nodes without real data):
  * a static street scene: sky, buildings with windows, a road with lane paint, grass, street lamps.
    Window grids, brick texture and lane paint exist in the visible image only; the thermal image has
    its own structure (a warm buried pipe, a parked car's warm footprint, a hot vent, a cold puddle);
  * people and vehicles moving on motion paths (crossing, patrolling, loitering), warm in IR, dark or
    dull in the visible image (especially at night);
  * low light: dark, noisy visible frames whose texture is still there, lit windows and lamp glow;
  * sensors: IR fixed-pattern noise (per-pixel gain/offset, column stripes) + temporal noise on both;
  * perturbations (FTPFusion's protocol): per-frame global gain flicker, per-frame global translation
    jitter of the rig (both cameras), and a smooth, slowly varying local warp of IR (misalignment);
  * IR as 8-bit (AGC'd output) or 16-bit 14-bit-like radiometric counts above an offset.

Every frame is a pure function of (config, t): per-frame randomness comes from generators seeded with
(seed, t, stream), with one stream per effect, so switching one effect on does not change the others.
Speed: the static scene, sprites and noise banks are built once; a frame is a crop, a few sprite
blends, one remap (misalignment only) and saturating OpenCV conversions.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Mapping

import cv2
import numpy as np

# Per-frame random streams (the third element of the seed sequence).
_S_JITTER, _S_FLICKER, _S_NOISE = 0, 1, 2
_NOISE_BANK = 4     # temporal noise fields kept in memory; a frame picks one at a random offset
_NOISE_PAD = 24     # margin of each field for those offsets
_IR_MAX_COUNT = 16383  # 14-bit radiometric range published in a 16-bit image


@dataclass
class SceneConfig:
    """Scene parameters; every field is a plain YAML-able value (see :meth:`from_dict`)."""

    width: int = 320
    height: int = 240
    seed: int = 0
    #: 8 (AGC'd thermal video) or 16 (14-bit-like radiometric counts in a uint16 image)
    ir_bit_depth: int = 8
    #: per-frame global gain flicker: gain = 1 + flicker * U(-1, 1), independently per modality
    flicker: float = 0.0
    #: per-frame global translation of the rig (both cameras), standard deviation in pixels
    #: (rounded to whole pixels, clipped to 3 standard deviations and to 5 % of the frame size)
    jitter: float = 0.0
    #: smooth local warp of IR relative to visible: peak displacement scale in pixels, slowly varying
    misalign: float = 0.0
    #: night scene: dark, noisy visible image with lit windows and lamps
    low_light: bool = True
    n_people: int = 3
    n_vehicles: int = 1
    #: multiplier on target speeds (1 = walking ~1 % of the width per frame at 10 Hz)
    speed: float = 1.0
    #: IR temporal noise standard deviation (fraction of the scene's thermal range)
    ir_noise: float = 0.008
    #: IR fixed-pattern noise strength (per-pixel offset/gain non-uniformity and column stripes)
    ir_fixed_pattern: float = 0.01
    #: visible temporal noise standard deviation (fraction of full scale); None: 0.02 at night, 0.006 by day
    vis_noise: float | None = None
    #: 16-bit IR: counts of the coldest scene value and counts spanned by the scene's range
    ir_offset: int = 6000
    ir_span: int = 3000

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16:
            raise ValueError(f"scene size must be at least 16x16, got {self.width}x{self.height}")
        if self.ir_bit_depth not in (8, 16):
            raise ValueError(f"ir_bit_depth must be 8 or 16, got {self.ir_bit_depth}")
        for name in ("flicker", "jitter", "misalign", "speed", "ir_noise", "ir_fixed_pattern"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.flicker >= 1:
            raise ValueError(f"flicker must be < 1 (relative gain amplitude), got {self.flicker}")
        if self.n_people < 0 or self.n_vehicles < 0:
            raise ValueError("n_people and n_vehicles must be >= 0")
        if self.vis_noise is not None and self.vis_noise < 0:
            raise ValueError(f"vis_noise must be >= 0, got {self.vis_noise}")
        if self.ir_offset < 0 or self.ir_span <= 0 or self.ir_offset + self.ir_span > _IR_MAX_COUNT:
            raise ValueError(f"ir_offset + ir_span must stay within 14 bits (0..{_IR_MAX_COUNT}), "
                             f"got {self.ir_offset} + {self.ir_span}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "SceneConfig":
        """Config from a mapping (e.g. a YAML section); unknown keys are an error."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown scene config keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def vis_noise_std(self) -> float:
        if self.vis_noise is not None:
            return self.vis_noise
        return 0.02 if self.low_light else 0.006


@dataclass
class _Target:
    kind: str            # "person" | "vehicle"
    ir: np.ndarray       # (h, w) float32 sprite, thermal value in [0, 1]
    vis: np.ndarray      # (h, w, 3) float32 BGR sprite (already exposed for the scene's lighting)
    alpha: np.ndarray    # (h, w) float32 coverage
    path: str            # "cross" | "patrol" | "loiter"
    x0: float            # path parameters in image coordinates (top-left corner of the sprite)
    y0: float
    velocity: float      # px per frame (signed)
    extent: float        # patrol half-width / loiter radius, px
    period: float        # frames
    phase: float


def _value_noise(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int = 3) -> np.ndarray:
    """Smooth procedural texture in about [-1, 1]: upsampled random grids summed over octaves."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
        grid = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
        cell = max(1.0, cell / 2)
    return out / total


def _blend(dst: np.ndarray, sprite: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend `sprite` into `dst` at top-left (x, y), clipped to dst (in place)."""
    h, w = alpha.shape
    H, W = dst.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x0 >= x1 or y0 >= y1:
        return
    sx, sy = x0 - x, y0 - y
    a = alpha[sy:sy + y1 - y0, sx:sx + x1 - x0]
    s = sprite[sy:sy + y1 - y0, sx:sx + x1 - x0]
    d = dst[y0:y1, x0:x1]
    if d.ndim == 3:
        a = a[:, :, None]
    d += (s - d) * a


class SyntheticScene:
    """Deterministic synthetic IR/visible video; ``frame(t)`` -> (ir (H,W) uint8|uint16, vis (H,W,3) BGR)."""

    def __init__(self, config: SceneConfig | Mapping[str, Any] | None = None) -> None:
        if config is None:
            config = SceneConfig()
        elif not isinstance(config, SceneConfig):
            config = SceneConfig.from_dict(config)
        self.config = cfg = config
        self.width, self.height = cfg.width, cfg.height
        rng = np.random.default_rng([cfg.seed, 0xC0FFEE])
        # The rig's view is a crop of a larger canvas: jitter moves the crop, not the pixels. The margin does
        # not depend on the jitter, so clean and perturbed scenes with the same seed show the same scene.
        self.margin = max(8, int(round(0.05 * max(cfg.width, cfg.height))))
        self._build_background(rng)
        self._build_targets(rng)
        self._build_sensor(rng)
        self._build_misalignment(rng)

    # ------------------------------------------------------------------------------------------ scene
    def _build_background(self, rng: np.random.Generator) -> None:
        cfg, m = self.config, self.margin
        H, W = cfg.height + 2 * m, cfg.width + 2 * m
        s = cfg.height / 240.0  # scale of features relative to a 320x240 frame
        self.horizon = horizon = int(0.42 * cfg.height) + m
        yy = np.arange(H, dtype=np.float32)[:, None]
        xx = np.arange(W, dtype=np.float32)[None, :]
        vis = np.zeros((H, W, 3), np.float32)   # reflectance-like colours (daylight exposure)
        ir = np.zeros((H, W), np.float32)       # thermal scene value in [0, 1]
        glow = np.zeros((H, W, 3), np.float32)  # light sources: not scaled by the low-light exposure

        # Sky: colour gradient in visible, cold and smooth in IR.
        sky_t = (yy[:horizon] / max(horizon, 1)).astype(np.float32)
        top, bottom = np.array([0.75, 0.55, 0.35], np.float32), np.array([0.9, 0.8, 0.7], np.float32)
        vis[:horizon] = top + (bottom - top) * sky_t[:, :, None]
        ir[:horizon] = 0.06 + 0.06 * sky_t

        # Ground: textured asphalt / grass in visible; a different, smoother thermal texture in IR.
        g = slice(horizon, H)
        tex = _value_noise(rng, H - horizon, W, 12 * s, octaves=4)
        grass = _value_noise(rng, H - horizon, W, 40 * s, octaves=2) > 0.25
        asphalt = np.array([0.42, 0.42, 0.44], np.float32)
        green = np.array([0.2, 0.45, 0.28], np.float32)
        base = np.where(grass[:, :, None], green, asphalt)
        vis[g] = base * (1 + 0.35 * tex[:, :, None])
        depth = (yy[g] - horizon) / max(H - horizon, 1)   # 0 at the horizon, 1 at the bottom
        ir[g] = 0.36 + 0.08 * depth + 0.04 * _value_noise(rng, H - horizon, W, 60 * s, octaves=2)
        ir[g] -= 0.05 * grass  # grass is cooler than asphalt at night
        # Road band with dashed lane paint (paint has no thermal contrast: visible only).
        road_y0, road_y1 = horizon + int(0.25 * (H - horizon)), horizon + int(0.62 * (H - horizon))
        vis[road_y0:road_y1] = asphalt * (1 + 0.25 * tex[road_y0 - horizon:road_y1 - horizon, :, None])
        lane_y = (road_y0 + road_y1) // 2
        dash = max(4, int(18 * s))
        for x in range(int(rng.integers(0, dash)), W, 2 * dash):
            cv2.rectangle(vis, (x, lane_y - max(1, int(s))), (x + dash, lane_y + max(1, int(s))), (0.9, 0.9, 0.9), -1)
        for yc in (road_y0, road_y1):  # kerbs: visible edges
            cv2.line(vis, (0, yc), (W, yc), (0.7, 0.7, 0.68), max(1, int(2 * s)))
        self.road = (road_y0, road_y1)

        # Buildings along the horizon: silhouettes in both images, windows and bricks in visible only.
        x = -int(rng.integers(0, int(30 * s) + 1))
        while x < W:
            bw = int(rng.uniform(40, 90) * s)
            bh = int(rng.uniform(0.35, 0.9) * (horizon - m))
            y0 = horizon - bh
            colour = rng.uniform(0.25, 0.6, 3).astype(np.float32) * np.array([0.8, 0.9, 1.0], np.float32)
            xs0, xs1 = max(x, 0), min(x + bw, W)
            if xs1 > xs0 and bh > 2:
                brick = _value_noise(rng, bh, xs1 - xs0, 3 * s, octaves=1)
                vis[y0:horizon, xs0:xs1] = colour * (1 + 0.15 * brick[:, :, None])
                ir[y0:horizon, xs0:xs1] = 0.3 + 0.02 * rng.standard_normal()
                win, gap = max(2, int(6 * s)), max(2, int(5 * s))
                for wy in range(y0 + gap, horizon - win - gap, win + gap):
                    for wx in range(x + gap, x + bw - win - gap, win + gap):
                        if rng.random() < 0.3:
                            cv2.rectangle(glow, (wx, wy), (wx + win - 1, wy + win - 1), (0.35, 0.75, 0.95), -1)
                        cv2.rectangle(vis, (wx, wy), (wx + win - 1, wy + win - 1), (0.25, 0.2, 0.15), -1)
                # A hot vent on the wall: IR only.
                if rng.random() < 0.5 and bh > 10 * s:
                    vx, vy = int(rng.uniform(xs0, xs1)), int(rng.uniform(y0 + 0.2 * bh, horizon - 0.2 * bh))
                    cv2.circle(ir, (vx, vy), max(1, int(3 * s)), 0.85, -1)
            x += bw + int(rng.uniform(0, 25) * s)

        # Thermal-only ground structure: a buried warm pipe, a parked car's warm footprint, a cold puddle.
        pipe_y = horizon + int(rng.uniform(0.7, 0.85) * (H - horizon))
        pipe = np.exp(-0.5 * ((yy - pipe_y - 4 * s * np.sin(xx / (37 * s))) / (3 * s)) ** 2)
        ir += 0.1 * pipe.astype(np.float32)
        fx, fy = int(rng.uniform(0.1, 0.7) * W), horizon + int(0.68 * (H - horizon))
        footprint = np.zeros((H, W), np.float32)
        cv2.rectangle(footprint, (fx, fy), (fx + int(50 * s), fy + int(14 * s)), 0.12, -1)
        ir += cv2.GaussianBlur(footprint, (0, 0), 3 * s)
        puddle = np.zeros((H, W), np.float32)
        cv2.ellipse(puddle, (int(rng.uniform(0.2, 0.8) * W), horizon + int(0.9 * (H - horizon))),
                    (int(22 * s), int(5 * s)), 0, 0, 360, 0.1, -1)
        ir -= cv2.GaussianBlur(puddle, (0, 0), 2 * s)

        # Street lamps: poles visible, lamp heads glow in visible and are warm in IR.
        lamps = np.zeros((H, W, 3), np.float32)
        for lx in np.linspace(0.12, 0.88, 3) * W + rng.uniform(-10, 10, 3) * s:
            lx, top_y = int(lx), int(horizon - 0.3 * (horizon - m))
            cv2.line(vis, (lx, top_y), (lx, road_y0), (0.2, 0.2, 0.22), max(1, int(2 * s)))
            cv2.circle(ir, (lx, top_y), max(1, int(2 * s)), 0.7, -1)
            cv2.circle(lamps, (lx, top_y), max(2, int(3 * s)), (0.6, 0.9, 1.0), -1)
        if cfg.low_light:
            glow += lamps + cv2.GaussianBlur(lamps, (0, 0), 12 * s) * 2.0

        ir = cv2.GaussianBlur(ir, (0, 0), 0.7 * s)  # thermal optics are soft
        if cfg.low_light:
            self.exposure = 0.22
            vis = vis * self.exposure + glow
        else:
            self.exposure = 1.0
        self.bg_vis = np.clip(vis, 0, 1).astype(np.float32)
        self.bg_ir = np.clip(ir, 0, 1).astype(np.float32)

    def _person_sprite(self, rng: np.random.Generator, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w = max(3, int(0.42 * h))
        pad = max(2, h // 10)
        H, W = h + 2 * pad, w + 2 * pad
        mask = np.zeros((H, W), np.float32)
        ir = np.zeros((H, W), np.float32)
        vis = np.zeros((H, W, 3), np.float32)
        cx = W // 2
        head_r = max(1, int(0.09 * h))
        body = (cx, pad + int(0.42 * h)), (max(1, int(0.2 * h)), max(1, int(0.22 * h)))
        legs_top, legs_bot = pad + int(0.55 * h), pad + h
        cloth = rng.uniform(0.1, 0.5, 3).astype(np.float32)
        trousers = rng.uniform(0.05, 0.3, 3).astype(np.float32)
        skin = np.array([0.45, 0.55, 0.75], np.float32) * rng.uniform(0.6, 1.1)
        for dst, val in ((mask, 1.0), (ir, 0.78), (vis, tuple(float(c) for c in cloth))):
            cv2.ellipse(dst, body[0], body[1], 0, 0, 360, val, -1)
        for dx in (-1, 1):
            p0, p1 = (cx + dx * int(0.07 * h), legs_top), (cx + dx * int(0.08 * h), legs_bot)
            thick = max(1, int(0.08 * h))
            for dst, val in ((mask, 1.0), (ir, 0.7), (vis, tuple(float(c) for c in trousers))):
                cv2.line(dst, p0, p1, val, thick)
        head = (cx, pad + head_r + 1)
        for dst, val in ((mask, 1.0), (ir, 0.9), (vis, tuple(float(c) for c in skin))):
            cv2.circle(dst, head, head_r, val, -1)
        return self._finish_sprite(ir, vis, mask, h)

    def _vehicle_sprite(self, rng: np.random.Generator, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w = int(2.4 * h)
        pad = max(2, h // 8)
        H, W = h + 2 * pad, w + 2 * pad
        mask = np.zeros((H, W), np.float32)
        ir = np.zeros((H, W), np.float32)
        vis = np.zeros((H, W, 3), np.float32)
        paint = tuple(float(c) for c in rng.uniform(0.1, 0.8, 3))
        body = (pad, pad + int(0.4 * h)), (pad + w, pad + int(0.85 * h))
        cabin = np.array([[pad + int(0.25 * w), pad + int(0.4 * h)], [pad + int(0.35 * w), pad],
                          [pad + int(0.7 * w), pad], [pad + int(0.8 * w), pad + int(0.4 * h)]], np.int32)
        for dst, val in ((mask, 1.0), (ir, 0.5), (vis, paint)):
            cv2.rectangle(dst, *body, val, -1)
            cv2.fillPoly(dst, [cabin], val)
        # Glass reflects the cold sky in IR.
        win = cabin.copy()
        win[:, 0] = pad + (win[:, 0] - pad - 0.52 * w) * 0.8 + 0.52 * w
        win[:, 1] = np.maximum(win[:, 1], pad + int(0.08 * h))
        cv2.fillPoly(ir, [win], 0.28)
        cv2.fillPoly(vis, [win], (0.3, 0.25, 0.2))
        # Engine at the front (right side; sprites are mirrored for leftward motion), warm tyres, exhaust.
        cv2.rectangle(ir, (pad + int(0.78 * w), pad + int(0.45 * h)), (pad + w, pad + int(0.8 * h)), 0.85, -1)
        cv2.circle(ir, (pad + 2, pad + int(0.8 * h)), max(1, int(0.07 * h)), 0.98, -1)
        for wx in (0.2, 0.8):
            c = (pad + int(wx * w), pad + int(0.85 * h))
            r = max(1, int(0.15 * h))
            for dst, val in ((mask, 1.0), (ir, 0.75), (vis, (0.05, 0.05, 0.05))):
                cv2.circle(dst, c, r, val, -1)
        lights = np.zeros_like(vis)
        if self.config.low_light:  # headlights: bright in the dark visible image, like real cars
            cv2.circle(lights, (pad + w - 2, pad + int(0.55 * h)), max(1, int(0.08 * h)), (0.8, 1.0, 1.0), -1)
        return self._finish_sprite(ir, vis, mask, h, lights)

    def _finish_sprite(self, ir: np.ndarray, vis: np.ndarray, mask: np.ndarray, h: int,
                       lights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ir, exposed vis, alpha (2, h, w): visible coverage and softer thermal coverage)."""
        # Soft thermal edges (heat spreads, thermal optics blur); antialiased coverage.
        sigma = max(0.5, h / 40)
        alpha = cv2.GaussianBlur(mask, (0, 0), 0.6)
        ir_soft = cv2.GaussianBlur(ir, (0, 0), sigma)
        norm = cv2.GaussianBlur(mask, (0, 0), sigma)
        ir = np.where(norm > 1e-3, ir_soft / np.maximum(norm, 1e-3), 0).astype(np.float32)
        ir_alpha = np.clip(norm * 1.3, 0, 1).astype(np.float32)
        exposed = vis * self.exposure
        if lights is not None:  # light sources are not darkened by the night exposure
            exposed = np.maximum(exposed, lights)
        return ir, exposed.astype(np.float32), np.stack([alpha, ir_alpha])

    def _build_targets(self, rng: np.random.Generator) -> None:
        cfg = self.config
        W, Hh = cfg.width, cfg.height
        horizon = self.horizon - self.margin
        ground = Hh - horizon
        road0, road1 = (self.road[0] - self.margin, self.road[1] - self.margin)
        self.targets: list[_Target] = []
        kinds = ["vehicle"] * cfg.n_vehicles + ["person"] * cfg.n_people
        for i, kind in enumerate(kinds):
            if kind == "vehicle":
                foot = rng.uniform(road0 + 0.4 * (road1 - road0), road1)
            else:
                foot = rng.uniform(horizon + 0.1 * ground, Hh - 0.02 * ground)
            depth = (foot - horizon) / ground           # perspective: nearer = lower = bigger
            h = int(max(8, (0.1 + 0.22 * depth) * Hh * (0.55 if kind == "vehicle" else 1.0)))
            ir, vis, alpha = self._vehicle_sprite(rng, h) if kind == "vehicle" else self._person_sprite(rng, h)
            sh, sw = ir.shape
            base_speed = (0.012 if kind == "vehicle" else 0.004) * W * cfg.speed * (0.5 + depth)
            path = "cross" if kind == "vehicle" else ("cross", "patrol", "loiter")[i % 3]
            self.targets.append(_Target(
                kind=kind, ir=ir, vis=vis, alpha=alpha, path=path,
                x0=float(rng.uniform(-sw, W)), y0=float(foot - sh),
                velocity=float(base_speed * rng.choice([-1.0, 1.0]) * rng.uniform(0.7, 1.3)),
                extent=float(rng.uniform(0.15, 0.3) * W if path == "patrol" else rng.uniform(0.03, 0.08) * W),
                period=float(rng.uniform(60, 160)), phase=float(rng.uniform(0, 2 * np.pi))))
        # Far targets first so that nearer ones occlude them.
        self.targets.sort(key=lambda tg: tg.y0 + tg.ir.shape[0])
        self._flipped = {id(tg): (tg.ir[:, ::-1].copy(), tg.vis[:, ::-1].copy(), tg.alpha[:, :, ::-1].copy())
                         for tg in self.targets}

    def _target_state(self, tg: _Target, t: int) -> tuple[int, int, bool]:
        """Top-left corner (image coordinates, before jitter) and whether the sprite faces left."""
        sh, sw = tg.ir.shape
        W = self.config.width
        if tg.path == "cross":
            span = W + 2 * sw
            x = (tg.x0 + sw + tg.velocity * t) % span - sw
            left = tg.velocity < 0
        elif tg.path == "patrol":
            speed = abs(tg.velocity)
            cycle = 4 * tg.extent
            u = (speed * t + tg.phase / (2 * np.pi) * cycle) % cycle
            tri = u if u < 2 * tg.extent else cycle - u          # 0 .. 2*extent .. 0
            centre = min(max(tg.x0, tg.extent), W - tg.extent - sw)
            x = centre - tg.extent + tri
            left = u >= 2 * tg.extent
        else:  # loiter: a slow Lissajous around the start point
            w = 2 * np.pi / tg.period
            x = min(max(tg.x0, 0), W - sw) + tg.extent * np.sin(w * t + tg.phase)
            left = np.cos(w * t + tg.phase) < 0
        bob = 0.02 * sh * np.sin(0.9 * t + tg.phase) if tg.kind == "person" else 0.0
        return int(round(x)), int(round(tg.y0 + bob)), bool(left)

    # ----------------------------------------------------------------------------------------- sensor
    def _build_sensor(self, rng: np.random.Generator) -> None:
        cfg = self.config
        H, W = cfg.height, cfg.width
        f = cfg.ir_fixed_pattern
        col = rng.standard_normal((1, W)).astype(np.float32)
        row = rng.standard_normal((H, 1)).astype(np.float32)
        pix = rng.standard_normal((H, W)).astype(np.float32)
        # Fixed pattern noise is tied to the sensor, so it is applied after the jitter crop.
        self.fpn_offset = (f * (1.0 * col + 0.3 * row + 0.5 * pix)).astype(np.float32)
        self.fpn_gain = (1.0 + f * 2.0 * rng.standard_normal((H, W))).astype(np.float32)
        p = _NOISE_PAD
        self._ir_bank = rng.standard_normal((_NOISE_BANK, H + p, W + p), dtype=np.float32)
        self._vis_bank = rng.standard_normal((_NOISE_BANK, H + p, W + p, 3), dtype=np.float32)
        self._grid_x, self._grid_y = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))

    def _build_misalignment(self, rng: np.random.Generator) -> None:
        # Two smooth random displacement fields per axis (random coarse grids upsampled once), mixed over
        # time by a slow rotation so the misalignment drifts. Built only when used: they cost memory.
        cfg = self.config
        self._warp_omega = 2 * np.pi / 120.0
        self._warp_fields = None
        if cfg.misalign > 0:
            coarse = rng.uniform(-1, 1, (4, 4, 5)).astype(np.float32)
            coarse /= np.abs(coarse).max(axis=(1, 2), keepdims=True)
            small = (max(2, cfg.width // 8), max(2, cfg.height // 8))
            fields_ = []
            for c in coarse:  # bilinear up to 1/8 size, smooth the creases there (cheap), then full size
                c = cv2.resize(c, small, interpolation=cv2.INTER_LINEAR)
                c = cv2.GaussianBlur(c, (0, 0), 0.01 * min(cfg.width, cfg.height), borderType=cv2.BORDER_REFLECT)
                fields_.append(cv2.resize(c, (cfg.width, cfg.height), interpolation=cv2.INTER_LINEAR))
            self._warp_fields = np.stack(fields_)

    def misalignment_field(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(dx, dy) displacement (H, W) float32 sampled by the IR warp at frame t (zeros when off)."""
        cfg = self.config
        if cfg.misalign <= 0:
            z = np.zeros((cfg.height, cfg.width), np.float32)
            return z, z
        c, s = cfg.misalign * math.cos(self._warp_omega * t), cfg.misalign * math.sin(self._warp_omega * t)
        f = self._warp_fields
        return cv2.addWeighted(f[0], c, f[1], s, 0.0), cv2.addWeighted(f[2], c, f[3], s, 0.0)

    # ------------------------------------------------------------------------------- per-frame values
    def jitter_offset(self, t: int) -> tuple[int, int]:
        """Global translation (dx, dy) of frame t in whole pixels: scene content moves by (-dx, -dy)."""
        if self.config.jitter <= 0:
            return 0, 0
        d = np.random.default_rng([self.config.seed, t, _S_JITTER]).standard_normal(2).clip(-3, 3)
        d = np.clip(np.rint(d * self.config.jitter), -self.margin, self.margin)
        return int(d[0]), int(d[1])

    def flicker_gains(self, t: int) -> tuple[float, float]:
        """(IR gain, visible gain) of frame t."""
        if self.config.flicker <= 0:
            return 1.0, 1.0
        u = np.random.default_rng([self.config.seed, t, _S_FLICKER]).uniform(-1, 1, 2)
        return float(1 + self.config.flicker * u[0]), float(1 + self.config.flicker * u[1])

    def boxes(self, t: int) -> list[tuple[str, int, int, int, int]]:
        """Ground-truth target boxes (kind, x0, y0, x1, y1) of frame t in image coordinates (x1, y1 exclusive),
        clipped to the frame; targets outside the frame are omitted."""
        dx, dy = self.jitter_offset(t)
        out = []
        for tg in self.targets:
            x, y, _ = self._target_state(tg, t)
            h, w = tg.ir.shape
            x0, y0, x1, y1 = max(x - dx, 0), max(y - dy, 0), min(x - dx + w, self.width), min(y - dy + h, self.height)
            if x1 > x0 and y1 > y0:
                out.append((tg.kind, x0, y0, x1, y1))
        return out

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame t: (ir (H, W) uint8 or uint16, vis (H, W, 3) uint8 BGR)."""
        t = int(t)
        if t < 0:
            raise ValueError(f"frame index must be >= 0, got {t}")
        cfg, m = self.config, self.margin
        H, W = cfg.height, cfg.width
        dx, dy = self.jitter_offset(t)
        vis = self.bg_vis[m + dy:m + dy + H, m + dx:m + dx + W].copy()
        ir = self.bg_ir[m + dy:m + dy + H, m + dx:m + dx + W].copy()
        for tg in self.targets:
            x, y, left = self._target_state(tg, t)
            s_ir, s_vis, s_alpha = self._flipped[id(tg)] if left else (tg.ir, tg.vis, tg.alpha)
            _blend(vis, s_vis, s_alpha[0], x - dx, y - dy)
            _blend(ir, s_ir, s_alpha[1], x - dx, y - dy)
        if cfg.misalign > 0:
            fx, fy = self.misalignment_field(t)
            ir = cv2.remap(ir, self._grid_x + fx, self._grid_y + fy, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT_101)
        # Sensor: fixed pattern (gain, offset), then temporal noise and flicker in one saturating pass.
        g_ir, g_vis = self.flicker_gains(t)
        if cfg.ir_fixed_pattern > 0:
            ir *= self.fpn_gain
            ir += self.fpn_offset
        r = np.random.default_rng([cfg.seed, t, _S_NOISE]).integers(0, [_NOISE_BANK, _NOISE_PAD + 1, _NOISE_PAD + 1,
                                                                        _NOISE_BANK, _NOISE_PAD + 1, _NOISE_PAD + 1])
        n_ir = self._ir_bank[r[0], r[1]:r[1] + H, r[2]:r[2] + W]
        n_vis = self._vis_bank[r[3], r[4]:r[4] + H, r[5]:r[5] + W]
        if cfg.ir_bit_depth == 16:
            ir_out = cv2.addWeighted(ir, cfg.ir_span * g_ir, n_ir, cfg.ir_span * cfg.ir_noise, cfg.ir_offset,
                                     dtype=cv2.CV_16U)
            np.minimum(ir_out, _IR_MAX_COUNT, out=ir_out)
        else:
            ir_out = cv2.addWeighted(ir, 255.0 * g_ir, n_ir, 255.0 * cfg.ir_noise, 0.0, dtype=cv2.CV_8U)
        vis_out = cv2.addWeighted(vis, 255.0 * g_vis, n_vis, 255.0 * cfg.vis_noise_std, 0.0, dtype=cv2.CV_8U)
        return ir_out, vis_out

    def frames(self, n_frames: int, start: int = 0) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(name, ir, vis) for frames start..start+n_frames-1, named 000001.png... like the readers."""
        for i in range(n_frames):
            ir, vis = self.frame(start + i)
            yield f"{i + 1:06d}.png", ir, vis

    def write_folders(self, root: str | os.PathLike, n_frames: int, sequence: str = "synthetic",
                      start: int = 0) -> Path:
        """Write ``ROOT/<sequence>/{ir,vis}/000001.png...`` (IR at its bit depth); returns the sequence folder."""
        from .sequences import write_pair_folders

        return write_pair_folders(root, sequence, self.frames(n_frames, start))
