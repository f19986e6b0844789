"""Synthetic NIR fluorescence video: one phantom scene (engine.phantoms.fluoro_frames) filmed over time.

What moves and changes, frame by frame, as in open surgery under a NIR camera:
  breathing   the whole field rises and falls (about 0.25 Hz, a few percent of the frame) with a slight zoom;
  deformation the tissue around the tumor is pushed and pulled by two slow, smooth displacement fields, so the
              tumor outline changes shape, not only place;
  drift       the camera wanders slowly (a smoothed random walk);
  glare       specular highlights that move with the tissue, flicker and saturate the sensor;
  gain        the camera's automatic gain steps now and then (the frame gets brighter or darker within a
              fraction of a second);
  noise       fresh shot and read noise in every frame;
  drops       now and then the camera skips a frame (its frame number jumps by two).

The truth mask moves with the tissue (the same warp, nearest neighbour), so every frame has its own mask.
Rendering costs tens of milliseconds per 1024-pixel frame, too much to do live on two cores next to the
model, so a clip is rendered once (`render_clip`) and played back (`engine.live.sources.PhantomSource`);
`cached_clip` keeps rendered clips in the cache folder, named by their settings.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.phantoms.fluoro_frames import make_frame

DEFAULT_FPS = 30.0
MIN_TUMOR_FRACTION = 0.02


@dataclass(frozen=True)
class VideoSettings:
    size: int = 1024
    frames: int = 120  # a 4-second loop at 30 fps
    fps: float = DEFAULT_FPS
    dataset: str = "A"
    seed: int = 7
    breathing_hz: float = 0.25
    breathing_amplitude: float = 0.03  # of the frame size
    deformation: float = 0.012  # of the frame size
    drift: float = 0.01  # of the frame size, SD of the slow camera wander
    gain_steps: int = 2  # automatic gain changes over the clip
    drop_rate: float = 0.02  # chance that the camera skips a frame number

    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        import hashlib

        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class PhantomClip:
    frames: np.ndarray  # (T, H, W) uint8 or uint16
    masks: np.ndarray  # (T, H, W) bool
    numbers: np.ndarray  # (T,) int64: the camera's frame numbers (gaps are dropped frames)
    bit_depth: int
    spacing_mm: tuple[float, float]
    settings: VideoSettings


def _smooth_field(rng: np.random.Generator, size: int, cells: int = 6) -> np.ndarray:
    """A smooth random field in [-1, 1] at `size` x `size`."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    field = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return field / max(float(np.abs(field).max()), 1e-6)


def _gain_curve(rng: np.random.Generator, n: int, steps: int, fps: float) -> np.ndarray:
    """Multiplicative gain per frame: 1, then a few steps to 0.7-1.35, each reached within ~0.2 s."""
    gain = np.ones(n, np.float32)
    level = 1.0
    for start in sorted(rng.integers(n // 8, max(n // 8 + 1, n - 1), size=steps)):
        target = float(rng.uniform(0.7, 1.35))
        ramp = np.clip((np.arange(n) - start) / max(1.0, 0.2 * fps), 0, 1).astype(np.float32)
        gain = gain * (1 + (target / level - 1) * ramp)
        level = target
    return gain


def render_clip(settings: VideoSettings = VideoSettings()) -> PhantomClip:
    """Render a phantom clip (same settings, same clip)."""
    s = settings
    rng = np.random.default_rng([s.seed, s.size, s.frames])
    margin = int(math.ceil(s.size * (s.breathing_amplitude + 2 * s.deformation + 3 * s.drift + 0.03)))
    canvas = s.size + 2 * margin
    for _ in range(20):  # a scene whose tumor is large enough to follow (the frame phantom also draws tiny ones)
        base = make_frame(rng, s.dataset, canvas)
        if base.mask[margin:-margin, margin:-margin].mean() >= MIN_TUMOR_FRACTION:
            break
    full_scale = float(2**base.bit_depth - 1)
    scene = base.image.astype(np.float32)
    mask_u8 = base.mask.astype(np.uint8)
    yy, xx = np.mgrid[0:s.size, 0:s.size].astype(np.float32)
    centre = (s.size - 1) / 2.0
    push = [(_smooth_field(rng, s.size), _smooth_field(rng, s.size)) for _ in range(2)]
    phases = rng.uniform(0, 2 * np.pi, 4)
    walk = np.cumsum(rng.standard_normal((s.frames, 2)), axis=0).astype(np.float32)
    walk = cv2.GaussianBlur(walk, (1, 0), sigmaX=0, sigmaY=max(1.0, s.fps / 2)).reshape(s.frames, 2)
    walk = walk / max(float(walk.std()), 1e-6) * np.float32(s.drift * s.size)
    gain = _gain_curve(rng, s.frames, s.gain_steps, s.fps)
    spots = rng.uniform(0.15, 0.85, (3, 2)) * s.size
    electrons = rng.uniform(1500, 3000)
    dtype = np.uint8 if base.bit_depth <= 8 else np.uint16
    frames = np.empty((s.frames, s.size, s.size), dtype)
    masks = np.empty((s.frames, s.size, s.size), bool)
    for t in range(s.frames):
        sec = t / s.fps
        breath = math.sin(2 * math.pi * s.breathing_hz * sec)
        zoom = 1.0 + 0.2 * s.breathing_amplitude * breath
        dy = s.breathing_amplitude * s.size * breath + walk[t, 0]
        dx = 0.3 * s.breathing_amplitude * s.size * math.sin(2 * math.pi * s.breathing_hz * sec + 1.0) + walk[t, 1]
        amp = [s.deformation * s.size * math.sin(2 * math.pi * 0.4 * sec + p) for p in phases[:2]]
        map_y = (yy - centre) / zoom + centre + margin + dy + amp[0] * push[0][0] + amp[1] * push[1][0]
        map_x = (xx - centre) / zoom + centre + margin + dx + amp[0] * push[0][1] + amp[1] * push[1][1]
        counts = cv2.remap(scene, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        masks[t] = cv2.remap(mask_u8, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT) > 0
        counts *= gain[t]
        # specular glare: small saturating spots riding on the tissue, flickering
        for k, (sy, sx) in enumerate(spots):
            if math.sin(2 * math.pi * (0.7 + 0.3 * k) * sec + phases[2 + k % 2]) < 0.2:
                continue
            cy, cx = sy + dy, sx + dx
            radius = s.size * 0.012 * (1 + 0.5 * k)
            r0, r1 = int(max(0, cy - 3 * radius)), int(min(s.size, cy + 3 * radius + 1))
            c0, c1 = int(max(0, cx - 3 * radius)), int(min(s.size, cx + 3 * radius + 1))
            if r1 > r0 and c1 > c0:
                d2 = (yy[r0:r1, c0:c1] - cy) ** 2 + (xx[r0:r1, c0:c1] - cx) ** 2
                counts[r0:r1, c0:c1] += np.float32(1.5 * full_scale) * np.exp(-d2 / (2 * radius * radius))
        dn_per_e = full_scale / electrons
        counts += np.sqrt(np.maximum(counts, 0) * np.float32(dn_per_e)) * rng.standard_normal(counts.shape,
                                                                                             np.float32)
        frames[t] = np.clip(counts + 0.5, 0, full_scale).astype(dtype)
    skips = rng.random(s.frames) < s.drop_rate
    skips[0] = False
    numbers = np.cumsum(1 + skips.astype(np.int64)) - 1
    spacing = base.spacing_mm
    return PhantomClip(frames, masks, numbers, base.bit_depth, spacing, s)


def cached_clip(settings: VideoSettings, folder: Path) -> PhantomClip:
    """The clip for `settings`, rendered once into `folder` and memory-mapped from there afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"phantom-{settings.dataset}-{settings.size}-{settings.frames}-{settings.key()}"
    files = {name: stem.with_name(stem.name + f".{name}.npy") for name in ("frames", "masks", "numbers")}
    info = stem.with_name(stem.name + ".json")
    if not (info.is_file() and all(f.is_file() for f in files.values())):
        clip = render_clip(settings)
        for name, path in files.items():
            tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npy")
            np.save(tmp, getattr(clip, name))
            os.replace(tmp, path)
        info.write_text(json.dumps({"bit_depth": clip.bit_depth, "spacing_mm": list(clip.spacing_mm)}))
    meta = json.loads(info.read_text())
    arrays = {name: np.load(path, mmap_mode="r", allow_pickle=False) for name, path in files.items()}
    return PhantomClip(arrays["frames"], arrays["masks"], np.asarray(arrays["numbers"]), int(meta["bit_depth"]),
                       tuple(meta["spacing_mm"]), settings)
