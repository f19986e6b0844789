"""Frame sources behind one interface: a camera or capture card (OpenCV), a video file, a GenICam camera
(harvesters, with the vendor's GenTL producer) and the phantom NIR video.

A source is opened, read frame by frame and closed. `read()` blocks until the next frame and returns it
with the source's frame number and the time it arrived (`time.perf_counter()`, the clock every live stage
stamps with); it returns None when a file ends, raises `SignalLost` when a stream stops (unplugged camera,
dead capture card) and `CorruptFrame` for a frame that arrived but cannot be used. Opening raises
`SourceError` with what to do about it. Frames come as grey (H, W) or RGB (H, W, 3) arrays, uint8 or uint16,
with the bit depth the sensor fills (a 12-bit camera delivers uint16 with bit depth 12).
"""

from __future__ import annotations

import glob
import os
import sys
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.paths import cache_dir
from engine.phantoms.fluoro_video import VideoSettings, cached_clip


class SourceError(RuntimeError):
    """A source cannot be opened; the message says what to do."""


class SignalLost(RuntimeError):
    """The stream stopped delivering frames (the live pipeline shows 'signal lost' and reopens the source)."""


class CorruptFrame(ValueError):
    """A frame arrived but cannot be used (empty, wrong size, wrong type); it is skipped and counted."""


@dataclass(frozen=True)
class Frame:
    number: int  # the source's frame number (a gap means the source skipped frames)
    captured: float  # time.perf_counter() when it arrived
    wall: float  # time.time() at the same moment (for recordings)
    image: np.ndarray  # (H, W) or (H, W, 3), uint8 or uint16
    bit_depth: int


@dataclass
class Control:
    """A setting the source exposes (exposure, gain, resolution...). value None: the source does not report it."""

    name: str
    value: float | str | None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple = ()
    unit: str = ""


def as_frame_image(image: np.ndarray, where: str) -> np.ndarray:
    """A grabbed buffer as a frame image: grey stays grey, a colour grab whose channels are equal becomes grey,
    other colour stays RGB. Anything else is a CorruptFrame."""
    if image is None or not isinstance(image, np.ndarray) or image.size == 0:
        raise CorruptFrame(f"{where}: an empty frame arrived.")
    if image.dtype not in (np.uint8, np.uint16):
        raise CorruptFrame(f"{where}: frames of type {image.dtype} are not camera frames (uint8 or uint16).")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    if image.ndim == 3 and image.shape[2] == 3:
        step = max(1, image.shape[0] // 64)
        sample = image[::step, ::step]
        if np.array_equal(sample[..., 0], sample[..., 1]) and np.array_equal(sample[..., 1], sample[..., 2]):
            return np.ascontiguousarray(image[..., 0])
        return image
    if image.ndim != 2 or min(image.shape[:2]) < 16:
        raise CorruptFrame(f"{where}: a frame of shape {image.shape} is not an image.")
    return image


class FrameSource(ABC):
    """One stream of frames. Subclasses set `label` and `nominal_fps` (None when unknown)."""

    label: str = "source"
    nominal_fps: float | None = None
    spacing_mm: tuple[float, float] | None = None

    @abstractmethod
    def open(self) -> None:
        """Start delivering frames; SourceError when that is impossible."""

    @abstractmethod
    def read(self) -> Frame | None:
        """The next frame (blocking); None at the end of a file; SignalLost / CorruptFrame as described above."""

    def close(self) -> None:  # noqa: B027  (most sources have something to release; the base has nothing)
        """Stop and release the device; safe to call twice."""

    def controls(self) -> dict[str, Control]:
        """The settings this source supports, with their current values."""
        return {}

    def set_control(self, name: str, value) -> bool:
        """Ask for a setting; False when the source does not support it."""
        return False

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Pacer:
    """Plays frames of a file at their own rate (or as fast as possible when rate is None)."""

    def __init__(self, fps: float | None) -> None:
        self.period = None if not fps else 1.0 / fps
        self.start: float | None = None
        self.count = 0

    def wait(self) -> None:
        if self.period is None:
            return
        now = time.perf_counter()
        if self.start is None:
            self.start = now
        due = self.start + self.count * self.period
        if due > now:
            time.sleep(due - now)
        elif now - due > 1.0:  # fell far behind (paused, debugger): restart the clock instead of racing
            self.start, self.count = now, 0
        self.count += 1


# ---------------------------------------------------------------------------------------------- OpenCV


_CV_CONTROLS = {"exposure": "CAP_PROP_EXPOSURE", "gain": "CAP_PROP_GAIN", "width": "CAP_PROP_FRAME_WIDTH",
                "height": "CAP_PROP_FRAME_HEIGHT", "fps": "CAP_PROP_FPS"}


def list_cameras() -> list[str]:
    """Camera devices this machine shows (Linux: /dev/video*; elsewhere the first indices that open)."""
    if sys.platform.startswith("linux"):
        return sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))
    import cv2

    found = []
    for index in range(4):
        cap = cv2.VideoCapture(index)
        if cap.isOpened():
            found.append(str(index))
        cap.release()
    return found


class CameraSource(FrameSource):
    """A UVC camera or capture card through OpenCV: `device` is an index or a device path. Width, height and
    fps are requested (the device may give others: `controls()` tells). `raw` asks for the sensor's own
    format (e.g. 16-bit Y16 from a NIR camera) instead of converted 8-bit colour; `bit_depth` says how many
    bits a uint16 frame fills (default 16)."""

    def __init__(self, device: int | str = 0, width: int | None = None, height: int | None = None,
                 fps: float | None = None, raw: bool = False, bit_depth: int | None = None,
                 timeout_s: float = 2.0) -> None:
        self.device = int(device) if isinstance(device, str) and device.isdigit() else device
        self.requested = {"width": width, "height": height, "fps": fps}
        self.raw, self.bit_depth, self.timeout_s = raw, bit_depth, timeout_s
        self.label = f"camera {device}"
        self._cap = None
        self._number = 0

    def open(self) -> None:
        import cv2

        cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            cap.release()
            seen = ", ".join(list_cameras()) or "none"
            raise SourceError(f"Camera {self.device} could not be opened. Is it plugged in and not in use by another "
                              f"program? Cameras this machine shows: {seen}.")
        for name, value in self.requested.items():
            if value:
                cap.set(getattr(cv2, _CV_CONTROLS[name]), float(value))
        if self.raw:
            cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a backlog
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.nominal_fps = float(fps) if fps and fps > 0 else None

    def read(self) -> Frame | None:
        if self._cap is None:
            raise SignalLost(f"{self.label} is not open.")
        ok, image = self._cap.read()
        captured, wall = time.perf_counter(), time.time()
        if not ok or image is None:
            raise SignalLost(f"{self.label} stopped delivering frames (unplugged or switched off?).")
        if image.ndim == 3 and image.shape[2] >= 3:
            image = image[..., 2::-1]  # OpenCV's BGR to RGB
        image = as_frame_image(image, self.label)
        self._number += 1
        depth = self.bit_depth or (16 if image.dtype == np.uint16 else 8)
        return Frame(self._number, captured, wall, image, depth)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def controls(self) -> dict[str, Control]:
        if self._cap is None:
            return {}
        import cv2

        out = {}
        for name, prop in _CV_CONTROLS.items():
            value = self._cap.get(getattr(cv2, prop))
            if value not in (-1, None) and not (name in ("exposure", "gain") and value == 0):
                out[name] = Control(name, float(value))
        return out

    def set_control(self, name: str, value) -> bool:
        if self._cap is None or name not in _CV_CONTROLS:
            return False
        import cv2

        return bool(self._cap.set(getattr(cv2, _CV_CONTROLS[name]), float(value)))


# ---------------------------------------------------------------------------------------------- files


class VideoFileSource(FrameSource):
    """A video file: anything OpenCV reads (PyAV when OpenCV cannot and PyAV is installed), or a frame stack
    saved as .npy (T, H, W), e.g. an OncoLens recording, which keeps 12/16-bit data. `realtime` plays at the
    file's rate; otherwise as fast as the reader can. `loop` starts again at the end."""

    def __init__(self, path: str | Path, realtime: bool = True, loop: bool = False, bit_depth: int | None = None,
                 fps: float | None = None) -> None:
        self.path = Path(path)
        self.realtime, self.loop, self.bit_depth, self.fps = realtime, loop, bit_depth, fps
        self.label = f"file {self.path.name}"
        self._reader = None
        self._stack: np.ndarray | None = None
        self._index = 0
        self._pacer: _Pacer | None = None

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"Video file {self.path} does not exist.")
        if self.path.suffix.lower() == ".npy":
            self._open_stack()
        else:
            self._reader = _open_video(self.path)
            self.nominal_fps = self.fps or self._reader.fps or 30.0
        self._pacer = _Pacer(self.nominal_fps if self.realtime else None)
        self._index = 0

    def _open_stack(self) -> None:
        from engine.io.gate import check_npy_header

        try:
            shape, dtype = check_npy_header(self.path, mapped=True)
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        if len(shape) != 3 or dtype not in (np.uint8, np.uint16):
            raise SourceError(f"{self.path}: a frame stack must be (frames, height, width) of uint8 or uint16, got "
                              f"{shape} {dtype}.")
        self._stack = np.load(self.path, mmap_mode="r", allow_pickle=False)
        info = _clip_info(self.path)
        self.nominal_fps = self.fps or float(info.get("fps") or 30.0)
        self.bit_depth = self.bit_depth or info.get("bit_depth")

    def read(self) -> Frame | None:
        if self._pacer is None:
            raise SignalLost(f"{self.label} is not open.")
        image = self._next()
        if image is None and self.loop and self._index > 0:
            self.close()
            self.open()
            image = self._next()
        if image is None:
            return None
        self._pacer.wait()
        self._index += 1
        image = as_frame_image(image, f"{self.label} frame {self._index}")
        depth = self.bit_depth or (16 if image.dtype == np.uint16 else 8)
        return Frame(self._index, time.perf_counter(), time.time(), image, int(depth))

    def _next(self) -> np.ndarray | None:
        if self._stack is not None:
            return None if self._index >= len(self._stack) else np.array(self._stack[self._index])
        return self._reader.read()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._stack = None
        self._pacer = None


def _clip_info(path: Path) -> dict:
    """Frame rate and bit depth written next to a frame stack by the recorder or the phantom cache."""
    import json

    for candidate in (path.with_suffix(".json"), path.parent / "clip.json"):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
    return {}


class _CvReader:
    def __init__(self, cap, fps: float) -> None:
        self.cap, self.fps = cap, fps

    def read(self) -> np.ndarray | None:
        ok, image = self.cap.read()
        if not ok:
            return None
        return image[..., 2::-1] if image.ndim == 3 and image.shape[2] >= 3 else image

    def close(self) -> None:
        self.cap.release()


class _AvReader:
    def __init__(self, path: Path) -> None:
        import av

        self.container = av.open(str(path))
        stream = self.container.streams.video[0]
        self.fps = float(stream.average_rate or 0) or None
        self.frames = self.container.decode(stream)

    def read(self) -> np.ndarray | None:
        try:
            frame = next(self.frames)
        except StopIteration:
            return None
        fmt = "gray16le" if "16" in frame.format.name or "12" in frame.format.name else None
        if fmt:
            return frame.to_ndarray(format=fmt)
        return frame.to_ndarray(format="gray" if frame.format.name.startswith("gray") else "rgb24")

    def close(self) -> None:
        self.container.close()


def _open_video(path: Path):
    import cv2

    cap = cv2.VideoCapture(str(path))
    if cap.isOpened():
        return _CvReader(cap, float(cap.get(cv2.CAP_PROP_FPS) or 0) or None)
    cap.release()
    try:
        return _AvReader(path)
    except ImportError:
        raise SourceError(f"{path}: OpenCV cannot read this video and PyAV is not installed. Install PyAV "
                          "(pip install av) or convert the file, e.g. ffmpeg -i in -c:v ffv1 out.mkv.") from None
    except Exception as exc:  # noqa: BLE001  (PyAV raises its own error types)
        raise SourceError(f"{path}: neither OpenCV nor PyAV can read it ({exc}).") from None


# ---------------------------------------------------------------------------------------------- GenICam


GENTL_ENV = "ONCOLENS_GENTL_PRODUCER"


class GenICamSource(FrameSource):
    """An industrial GenICam camera (typical for InGaAs NIR-II) through `harvesters` and the camera vendor's
    GenTL producer (.cti file), given here, in the setting `gentl_producer` or in ONCOLENS_GENTL_PRODUCER."""

    def __init__(self, producer: str | Path | None = None, device_index: int = 0, timeout_s: float = 2.0) -> None:
        self.producer = Path(producer) if producer else (Path(os.environ[GENTL_ENV]) if os.environ.get(GENTL_ENV)
                                                         else None)
        self.device_index, self.timeout_s = device_index, timeout_s
        self.label = f"GenICam camera {device_index}"
        self._harvester = None
        self._acquirer = None
        self._number = 0

    def open(self) -> None:
        if self.producer is None:
            raise SourceError("No GenTL producer is configured. GenICam cameras (e.g. InGaAs NIR-II cameras) are "
                              "reached through the camera vendor's producer file (.cti): give its path in the live "
                              f"view's source settings, the 'gentl_producer' setting or {GENTL_ENV}.")
        if not self.producer.is_file():
            raise SourceError(f"The GenTL producer {self.producer} does not exist; install the camera vendor's SDK "
                              "or correct the path.")
        try:
            from harvesters.core import Harvester
        except ImportError:
            raise SourceError("GenICam cameras need the 'harvesters' package: pip install harvesters.") from None
        harvester = Harvester()
        harvester.add_file(str(self.producer))
        harvester.update()
        if len(harvester.device_info_list) <= self.device_index:
            found = len(harvester.device_info_list)
            harvester.reset()
            raise SourceError(f"The producer {self.producer.name} finds {found} camera(s); camera "
                              f"{self.device_index} is not there. Check the cable and the camera's power.")
        create = getattr(harvester, "create", None) or harvester.create_image_acquirer
        self._acquirer = create(self.device_index)
        self._acquirer.start()
        self._harvester = harvester
        try:
            rate = self._acquirer.remote_device.node_map.AcquisitionFrameRate.value
            self.nominal_fps = float(rate)
        except Exception:  # noqa: BLE001  (not every camera has the node)
            self.nominal_fps = None

    def read(self) -> Frame | None:
        if self._acquirer is None:
            raise SignalLost(f"{self.label} is not open.")
        fetch = getattr(self._acquirer, "fetch", None) or self._acquirer.fetch_buffer
        try:
            with fetch(timeout=self.timeout_s) as buffer:
                captured, wall = time.perf_counter(), time.time()
                component = buffer.payload.components[0]
                image = np.array(component.data, copy=True).reshape(component.height, component.width)
                fmt = str(getattr(component, "data_format", ""))
        except Exception as exc:  # noqa: BLE001  (timeouts and transport errors: the stream stopped)
            raise SignalLost(f"{self.label}: no frame within {self.timeout_s:.1f} s ({type(exc).__name__}).") from None
        digits = "".join(ch for ch in fmt if ch.isdigit())
        depth = int(digits) if digits else (16 if image.dtype == np.uint16 else 8)
        self._number += 1
        return Frame(self._number, captured, wall, as_frame_image(image, self.label), depth)

    def close(self) -> None:
        if self._acquirer is not None:
            try:
                self._acquirer.stop()
                self._acquirer.destroy()
            finally:
                self._acquirer = None
        if self._harvester is not None:
            self._harvester.reset()
            self._harvester = None

    _NODES = {"exposure": ("ExposureTime", "us"), "gain": ("Gain", "dB"), "width": ("Width", "px"),
              "height": ("Height", "px"), "fps": ("AcquisitionFrameRate", "Hz")}

    def controls(self) -> dict[str, Control]:
        if self._acquirer is None:
            return {}
        nodes = self._acquirer.remote_device.node_map
        out = {}
        for name, (node_name, unit) in self._NODES.items():
            node = getattr(nodes, node_name, None)
            if node is None:
                continue
            try:
                out[name] = Control(name, node.value, getattr(node, "min", None), getattr(node, "max", None),
                                    unit=unit)
            except Exception:  # noqa: BLE001,S112  (a node that cannot be read is left out)
                continue
        return out

    def set_control(self, name: str, value) -> bool:
        if self._acquirer is None or name not in self._NODES:
            return False
        node = getattr(self._acquirer.remote_device.node_map, self._NODES[name][0], None)
        if node is None:
            return False
        try:
            node.value = type(node.value)(value)
        except Exception:  # noqa: BLE001
            return False
        return True


# ---------------------------------------------------------------------------------------------- phantom


@dataclass
class _Plug:
    """The phantom's 'cable': unplugging it makes the source behave like a camera that stopped."""

    connected: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.connected.set()


class PhantomSource(FrameSource):
    """The phantom NIR fluorescence video (engine.phantoms.fluoro_video), played at its frame rate (or as fast
    as possible), looping. `unplug()` / `replug()` simulate a lost and returning signal; `corrupt_every`
    delivers an unusable frame every so many frames (both for tests and demonstrations)."""

    def __init__(self, settings: VideoSettings | None = None, realtime: bool = True, loop: bool = True,
                 corrupt_every: int | None = None, timeout_s: float = 1.0) -> None:
        settings = settings or VideoSettings()
        self.settings = settings
        self.realtime, self.loop, self.corrupt_every, self.timeout_s = realtime, loop, corrupt_every, timeout_s
        self.label = f"phantom NIR video {settings.size} px"
        self.nominal_fps = settings.fps
        self.clip = None
        self.plug = _Plug()
        self._index = 0
        self._offset = 0
        self._pacer: _Pacer | None = None

    def unplug(self) -> None:
        self.plug.connected.clear()

    def replug(self) -> None:
        self.plug.connected.set()

    def open(self) -> None:
        if not self.plug.connected.is_set():
            raise SourceError(f"{self.label}: no signal.")
        if self.clip is None:
            self.clip = cached_clip(self.settings, cache_dir() / "phantom-video")
            self.spacing_mm = tuple(self.clip.spacing_mm)
        self._pacer = _Pacer(self.settings.fps if self.realtime else None)

    def read(self) -> Frame | None:
        if self._pacer is None:
            raise SignalLost(f"{self.label} is not open.")
        if not self.plug.connected.wait(self.timeout_s) or not self.plug.connected.is_set():
            self._pacer = None
            raise SignalLost(f"{self.label}: no frame within {self.timeout_s:.1f} s.")
        clip = self.clip
        n = len(clip.frames)
        if self._index >= n:
            if not self.loop:
                return None
            self._offset += int(clip.numbers[-1]) + 1
            self._index = 0
        self._pacer.wait()
        i = self._index
        self._index += 1
        number = self._offset + int(clip.numbers[i])
        if self.corrupt_every and number % self.corrupt_every == self.corrupt_every - 1:
            raise CorruptFrame(f"{self.label}: frame {number} arrived damaged (simulated).")
        return Frame(number, time.perf_counter(), time.time(), np.array(clip.frames[i]), clip.bit_depth)

    def truth(self, number: int) -> np.ndarray:
        """The tumor mask of a frame this source delivered (the phantom knows it)."""
        numbers = self.clip.numbers
        base = int(numbers[-1]) + 1
        index = int(np.searchsorted(numbers, number % base))
        return np.asarray(self.clip.masks[min(index, len(numbers) - 1)])

    def close(self) -> None:
        self._pacer = None


SOURCE_TYPES = ("camera", "file", "genicam", "phantom")


def open_source(source: str, target: str | None = None, **options) -> FrameSource:
    """A source by type ('camera', 'file', 'genicam', 'phantom') and target (device, path, producer, size)."""
    if source == "camera":
        return CameraSource(target if target is not None else 0, **options)
    if source == "file":
        if not target:
            raise SourceError("A file source needs the path of a video file.")
        return VideoFileSource(target, **options)
    if source == "genicam":
        return GenICamSource(target, **options)
    if source == "phantom":
        size = int(target) if target else 1024
        return PhantomSource(VideoSettings(size=size), **options)
    raise SourceError(f"Unknown source '{source}': use {', '.join(SOURCE_TYPES)}.")
