"""The fluorescence-video kind: a recorded NIR clip (TYX), with the overlays the live view computed while
recording and, when predicted again, per-frame contours from the chosen segmentation method.

A recording folder (engine.live.recording) becomes a case in place: `case_from_recording` wraps its
memory-mapped frames, `save_recording` writes case.json beside them and adds the case to the store, and
`recover_recordings` finds recordings an interrupted session never saved and saves what they hold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.cases.kinds import CaseKind, Method, ModalityRole, TaskInfo, register_kind
from engine.cases.model import Case
from engine.data import COUNTS, ImageMeta, ModalityImage, PredictionSummary
from engine.io.images import ImageReadError
from engine.live.recording import CLIP_FILE, FRAMES_FILE, INFO_FILE, OVERLAYS_FILE, read_clip

KIND = "fluoro_video"
FAMILY = "fluoro_seg"
MODALITY = "NIR"
TYX = "TYX"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv")
MAX_OPEN_FRAMES = 900  # a loose video file is read into memory: 30 s at 30 fps


class FluoroVideoKind(CaseKind):
    name = KIND
    title = "Fluorescence video"
    roles = (ModalityRole(MODALITY, "NIR fluorescence clip", (TYX,), COUNTS),)
    tasks = (TaskInfo("tumor", "Tumor", "tumor in the clip", ("no tumor", "tumor")),)

    def methods(self) -> list[Method]:
        from engine.kinds.fluoro_frame import FLUORO_FRAME

        return FLUORO_FRAME.methods()

    def make_predictor(self, modalities: tuple[str, ...], method: str | None = None):
        from engine.predict.fluoro_video import FluoroVideoPredictor

        return FluoroVideoPredictor(method or self.default_method())

    def primary_model(self) -> str:
        from engine.kinds.fluoro_frame import FLUORO_FRAME

        return FLUORO_FRAME.primary_model()

    def model_title(self, summary: PredictionSummary) -> tuple[str, str]:
        from engine.predict.fluoro import method_label

        return method_label(summary.variant), "per frame"

    def cards_label(self) -> str:
        from engine.kinds.fluoro_frame import FLUORO_FRAME

        return FLUORO_FRAME.cards_label()

    def claims_files(self, paths) -> int:
        if len(paths) != 1:
            return 0
        path = Path(paths[0])
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return 5
        if path.suffix.lower() == ".npy" and (path.parent / INFO_FILE).is_file():
            return 5
        return 0

    def case_from_files(self, paths, modality: str | None = None) -> Case:
        if len(paths) != 1:
            raise ImageReadError(f"A fluorescence-video case is one clip; {len(paths)} files were given.")
        path = Path(paths[0])
        if (path.parent / INFO_FILE).is_file() and path.name == CLIP_FILE:
            return case_from_recording(path.parent)
        return _case_from_video_file(path)

    def write_demo_cases(self, folder: Path) -> list[Path]:
        return [write_demo_recording(folder / "demo-video-01")]


FLUORO_VIDEO = register_kind(FluoroVideoKind())


def case_from_recording(folder: str | Path, case_id: str | None = None) -> Case:
    """The case of a recording folder: its frames memory-mapped, its per-frame records attached."""
    folder = Path(folder)
    clip = read_clip(folder)
    if len(clip.frames) == 0:
        raise ImageReadError(f"{folder}: the recording holds no complete frame.")
    info = clip.info
    spacing = tuple(info["spacing_mm"]) if info.get("spacing_mm") else None
    meta = ImageMeta(int(info.get("bit_depth") or (16 if clip.frames.dtype == np.uint16 else 8)), COUNTS, spacing,
                     source={"file": CLIP_FILE, "recorded_from": info.get("source", ""),
                             "fps": info.get("fps"), "started_utc": info.get("started_utc")})
    frames = clip.frames
    if frames.ndim == 4:  # colour grabs: the clip role is grey
        frames = np.round(np.asarray(frames, dtype=np.float32).mean(axis=3)).astype(frames.dtype)
    complete = clip.complete
    notes = (f"Recorded live from {info.get('source') or 'a camera'}: {len(frames)} frames, "
             f"{len(clip.overlays)} with overlays" + ("" if complete else
                                                      "; the recording was interrupted (frames up to the last "
                                                      "flushed segment)"))
    case = Case(id=case_id or folder.name, kind=KIND, notes=notes)
    case.images[MODALITY] = ModalityImage(MODALITY, frames, meta, TYX)
    for key, name in (("frames", FRAMES_FILE), ("overlays", OVERLAYS_FILE), ("clip", INFO_FILE)):
        if (folder / name).is_file():
            case.attachments[key] = folder / name
    return case


def save_recording(store, folder: str | Path, actor: str) -> Case:
    """Write case.json into a recording folder and add (or update) the case in the store."""
    from engine.cases.bundle import write_bundle

    case = case_from_recording(folder)
    write_bundle(case, folder)
    store.add_case(case, Path(folder), actor=actor)
    return case


def recover_recordings(store, root: str | Path, actor: str = "oncolens") -> list[str]:
    """Recordings under `root` that were never saved as cases (the app was killed while recording), saved
    now with the frames they hold; their case ids."""
    saved = []
    for info in sorted(Path(root).glob(f"*/{INFO_FILE}")):
        folder = info.parent
        try:
            if (folder / "case.json").is_file() or json.loads(info.read_text(encoding="utf-8")).get("complete"):
                continue
            save_recording(store, folder, actor)
            saved.append(folder.name)
        except (ImageReadError, OSError, ValueError):
            continue  # nothing readable in it: leave the folder for a person to look at
    return saved


def _case_from_video_file(path: Path) -> Case:
    from engine.live.sources import SourceError, VideoFileSource

    source = VideoFileSource(path, realtime=False)
    try:
        source.open()
    except SourceError as exc:
        raise ImageReadError(str(exc)) from None
    frames, depth = [], 8
    try:
        while len(frames) < MAX_OPEN_FRAMES:
            frame = source.read()
            if frame is None:
                break
            image = frame.image if frame.image.ndim == 2 else np.round(frame.image.mean(axis=2)).astype(
                frame.image.dtype)
            frames.append(image)
            depth = frame.bit_depth
    finally:
        source.close()
    if not frames:
        raise ImageReadError(f"{path}: no frame could be read from the video.")
    fps = source.nominal_fps
    meta = ImageMeta(depth, COUNTS, None, source={"file": path.name, "fps": fps})
    case = Case(id=Case.new_id("video"), kind=KIND,
                notes=f"Opened from {path}: {len(frames)} frames" + (
                    f" (the first {MAX_OPEN_FRAMES})" if len(frames) == MAX_OPEN_FRAMES else ""))
    case.images[MODALITY] = ModalityImage(MODALITY, np.stack(frames), meta, TYX)
    return case


def write_demo_recording(folder: Path, size: int = 256, frames: int = 90) -> Path:
    """A demo video case: the phantom clip run through the installed segmentation net (or DRLSE is skipped:
    the clip is then saved without overlays) exactly as the live view records it."""
    from engine.live.pipeline import LivePipeline
    from engine.live.recording import ClipRecorder
    from engine.live.sources import PhantomSource
    from engine.phantoms.fluoro_video import VideoSettings
    from engine.predict.fluoro import DRLSE, FluoroSegPredictor, installed_methods

    source = PhantomSource(VideoSettings(size=size, frames=frames), realtime=False, loop=False)
    source.open()
    recorder = ClipRecorder(folder, source=f"{source.label} (synthetic demo)", fps=source.nominal_fps,
                            spacing_mm=source.spacing_mm)
    nets = [m for m in installed_methods() if m != DRLSE]
    pipeline = None
    if nets:
        pipeline = LivePipeline(source, FluoroSegPredictor("unet" if "unet" in nets else nets[0]))
    while (frame := source.read()) is not None:
        recorder.add_frame(frame)
        if pipeline is not None:
            overlay = pipeline.process(frame)
            overlay.stamps["delivered"] = overlay.stamps["contoured"]
            recorder.add_overlay(overlay)
    recorder.stop()
    source.close()
    case = case_from_recording(folder, case_id=folder.name)
    case.notes = "Synthetic phantom NIR video (demo): " + case.notes
    from engine.cases.bundle import write_bundle

    return write_bundle(case, folder)
