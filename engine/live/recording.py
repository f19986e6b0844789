"""Recording a live stream: every source frame, with its time, and the overlays computed on it.

A recording is a folder (it becomes a video case's bundle):
  image_NIR.npy    the frames as one (T, H, W[, 3]) array, appended as they come; its header is rewritten at
                   every flushed segment, so after a crash the file reads as the frames up to the last flush
  frames.jsonl     one line per frame: index in the clip, the source's frame number, capture time
  overlays.jsonl   one line per processed frame: frame number, probability, contour points, timings
  clip.json        source, frame rate, bit depth, spacing; the final counts once the recording stops
Frames and lines are written by one writer thread, flushed and fsync'd every `segment_frames` frames (a
segment); nothing before the last flushed segment can be lost. The recorder takes frames from the source
directly (not from the inference slot), so a slow model never costs a recorded frame; if the disk falls
behind the queue grows and `backlog` says by how much.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.live.sources import Frame
from engine.paths import open_private, private_dir

CLIP_FILE = "image_NIR.npy"
FRAMES_FILE = "frames.jsonl"
OVERLAYS_FILE = "overlays.jsonl"
INFO_FILE = "clip.json"
HEADER_BYTES = 256  # fixed .npy header size, so the shape can be rewritten in place
SEGMENT_FRAMES = 15  # half a second at 30 fps


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A .npy version 1.0 header padded to HEADER_BYTES, so it can be rewritten with any frame count."""
    text = f"{{'descr': {np.dtype(dtype).str!r}, 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    pad = HEADER_BYTES - 10 - len(text) - 1
    if pad < 0:
        raise ValueError(f"clip shape {shape} does not fit the header")
    body = (text + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY" + bytes([1, 0]) + len(body).to_bytes(2, "little") + body


def _jsonable_contours(contours: list[np.ndarray]) -> list[list[list[float]]]:
    return [np.round(np.asarray(c, dtype=np.float64), 2).tolist() for c in contours]


@dataclass
class RecordingSummary:
    folder: Path
    frames: int
    overlays: int
    seconds: float
    first_number: int | None
    last_number: int | None
    source_gaps: int  # frame numbers the source skipped while recording


class ClipRecorder:
    """Writes one recording into `folder` (created). Feed it with `add_frame` (every source frame) and
    `add_overlay` (every processed frame); `stop` drains the queue and closes the clip."""

    def __init__(self, folder: str | Path, *, source: str = "", fps: float | None = None,
                 spacing_mm: tuple[float, float] | None = None, segment_frames: int = SEGMENT_FRAMES,
                 max_seconds: float | None = None) -> None:
        self.folder = private_dir(folder)  # a recording is patient video: owner-only, as bundles are
        self.info = {"format": "oncolens-clip", "version": 1, "source": source, "fps": fps,
                     "spacing_mm": list(spacing_mm) if spacing_mm else None, "segment_frames": segment_frames,
                     "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "complete": False}
        self.segment_frames = max(1, int(segment_frames))
        self.max_seconds = max_seconds
        self._queue: queue.Queue = queue.Queue()
        self._frames = 0
        self._overlays = 0
        self._shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None
        self._first: Frame | None = None
        self._last: Frame | None = None
        self._gaps = 0
        self._clip = None
        self._lines = None
        self._overlay_lines = None
        self._error: BaseException | None = None
        self._accepting = True
        self._write_info()
        self._thread = threading.Thread(target=self._run, name="live-recorder", daemon=True)
        self._thread.start()

    # -- feeding (any thread) ----------------------------------------------------------------------

    def add_frame(self, frame: Frame) -> None:
        if not self._accepting:
            return
        if self.max_seconds is not None and self._first is not None and \
                frame.captured - self._first.captured > self.max_seconds:
            self._accepting = False
            return
        if self._first is None:
            self._first = frame
        self._queue.put(("frame", frame))

    def add_overlay(self, overlay) -> None:
        if self._accepting:
            self._queue.put(("overlay", overlay))

    @property
    def backlog(self) -> int:
        """Items waiting for the disk."""
        return self._queue.qsize()

    @property
    def frames(self) -> int:
        return self._frames

    @property
    def error(self) -> BaseException | None:
        return self._error

    def stop(self, timeout: float = 60.0) -> RecordingSummary:
        """Stop taking frames, write what is queued, close the clip and mark it complete."""
        self._accepting = False
        self._queue.put(("stop", None))
        self._thread.join(timeout)
        if self._error is not None:
            raise RuntimeError(f"Recording into {self.folder} failed: {self._error}") from self._error
        seconds = 0.0 if self._first is None or self._last is None else self._last.captured - self._first.captured
        self.info.update(complete=True, frames=self._frames, overlays=self._overlays, seconds=round(seconds, 4),
                         source_gaps=self._gaps)
        self._write_info()
        return RecordingSummary(self.folder, self._frames, self._overlays, seconds,
                                None if self._first is None else self._first.number,
                                None if self._last is None else self._last.number, self._gaps)

    # -- writer thread ----------------------------------------------------------------------------

    def _write_info(self) -> None:
        tmp = self.folder / (INFO_FILE + ".tmp")
        with open_private(tmp, encoding="utf-8") as handle:
            handle.write(json.dumps(self.info, indent=2))
        os.replace(tmp, self.folder / INFO_FILE)

    def _open(self, frame: Frame) -> None:
        self._shape = frame.image.shape
        self._dtype = frame.image.dtype
        self.info.update(bit_depth=frame.bit_depth, frame_shape=list(self._shape), dtype=str(self._dtype))
        self._write_info()
        self._clip = open_private(self.folder / CLIP_FILE, "wb")
        self._clip.write(_npy_header((0, *self._shape), self._dtype))
        self._lines = open_private(self.folder / FRAMES_FILE, encoding="utf-8")
        self._overlay_lines = open_private(self.folder / OVERLAYS_FILE, encoding="utf-8")

    def _run(self) -> None:
        try:
            while True:
                what, item = self._queue.get()
                if what == "stop":
                    break
                if what == "frame":
                    self._write_frame(item)
                else:
                    self._write_overlay(item)
        except BaseException as exc:  # noqa: BLE001  (reported by stop())
            self._error = exc
        finally:
            self._flush()
            for fh in (self._clip, self._lines, self._overlay_lines):
                if fh is not None:
                    fh.close()

    def _write_frame(self, frame: Frame) -> None:
        if self._clip is None:
            self._open(frame)
        if frame.image.shape != self._shape or frame.image.dtype != self._dtype:
            return  # a source that changed resolution mid-clip: the clip keeps its first format
        if self._last is not None and frame.number > self._last.number + 1:
            self._gaps += frame.number - self._last.number - 1
        self._clip.write(np.ascontiguousarray(frame.image).tobytes())
        self._lines.write(json.dumps({"i": self._frames, "number": frame.number,
                                      "t": round(frame.captured - self._first.captured, 6),
                                      "wall": round(frame.wall, 6)}) + "\n")
        self._frames += 1
        self._last = frame
        if self._frames % self.segment_frames == 0:
            self._flush()

    def _write_overlay(self, overlay) -> None:
        if self._overlay_lines is None:
            return
        record = {"number": overlay.frame.number, "method": overlay.method,
                  "probability": round(float(overlay.probability), 6), "threshold": overlay.threshold,
                  "area_px": round(float(overlay.area_px), 2), "smoothing": overlay.smoothing,
                  "contours": _jsonable_contours(overlay.contours),
                  "timings_ms": {k: round(float(v), 3) for k, v in overlay.timings_ms.items()}}
        self._overlay_lines.write(json.dumps(record) + "\n")
        self._overlays += 1

    def _flush(self) -> None:
        """Make everything written so far durable and the header count it (one segment)."""
        if self._clip is None:
            return
        for fh in (self._lines, self._overlay_lines):
            fh.flush()
            os.fsync(fh.fileno())
        self._clip.flush()
        os.fsync(self._clip.fileno())
        end = self._clip.tell()
        self._clip.seek(0)
        self._clip.write(_npy_header((self._frames, *self._shape), self._dtype))
        self._clip.flush()
        os.fsync(self._clip.fileno())
        self._clip.seek(end)


# ---------------------------------------------------------------------------------------------- reading


def _read_lines(path: Path) -> list[dict]:
    """JSON lines; a last line cut short by a crash is left out."""
    if not path.is_file():
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                out.append(json.loads(line))
            except ValueError:
                break
    return out


@dataclass
class RecordedClip:
    """A recording read back: frames memory-mapped, per-frame times, overlays by frame number."""

    folder: Path
    frames: np.ndarray  # (T, H, W[, 3]) memory-mapped
    numbers: list[int]
    times: list[float]  # seconds since the first frame
    overlays: dict[int, dict]  # by source frame number
    info: dict

    def overlay_at(self, index: int) -> dict | None:
        """The overlay shown with frame `index`: the one computed on it, else the latest one before it
        (the live view kept showing it), marked with the frame it came from."""
        number = self.numbers[index]
        if number in self.overlays:
            return self.overlays[number]
        earlier = [n for n in self.overlays if n < number]
        return None if not earlier else self.overlays[max(earlier)]

    @property
    def complete(self) -> bool:
        return bool(self.info.get("complete"))


def read_clip(folder: str | Path) -> RecordedClip:
    """Read a recording folder (finished or cut off by a crash)."""
    folder = Path(folder)
    info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    path = folder / CLIP_FILE
    frames = np.load(path, mmap_mode="r", allow_pickle=False) if path.is_file() else np.zeros((0, 1, 1), np.uint8)
    lines = _read_lines(folder / FRAMES_FILE)[: len(frames)]
    frames = frames[: len(lines)]
    overlays = {int(r["number"]): r for r in _read_lines(folder / OVERLAYS_FILE)}
    return RecordedClip(folder, frames, [int(r["number"]) for r in lines], [float(r["t"]) for r in lines],
                        overlays, info)
