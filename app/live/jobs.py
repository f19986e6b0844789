"""The live view's work that must not run on the GUI thread, as plain functions (no Qt): opening a source and
loading a segmentation net, classifying a frozen frame with the FL-CNN cascade, saving a frozen frame as a
fluorescence-frame case, and starting and finishing a recording (a video case). The view submits them to the
worker pool; the tests and the bench call them directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.cases.bundle import write_bundle
from engine.cases.model import Case
from engine.data import COUNTS, ImageMeta, Prediction, image_of
from engine.live.pipeline import Overlay
from engine.live.recording import ClipRecorder, RecordingSummary
from engine.live.sources import FrameSource, SourceError, list_cameras, open_source
from engine.paths import user_data_dir

ACTOR = "oncolens-live"
SOURCE_TYPES = {"phantom": "Phantom NIR video", "camera": "Camera / capture card", "file": "Video file",
                "genicam": "GenICam camera (GenTL producer)"}
LIVE_UNSUITABLE = {"drlse": "DRLSE takes seconds a frame: offered for still frames, not for live video"}


@dataclass
class SourceChoice:
    """What the source picker says: a source type of `engine.live.sources.open_source`, its target and options."""

    source_type: str
    target: str | None = None
    options: dict = field(default_factory=dict)

    def describe(self) -> str:
        return f"{SOURCE_TYPES.get(self.source_type, self.source_type)}" + (f" {self.target}" if self.target else "")


def cases_root() -> Path:
    """Where recordings and saved frames go (each a case bundle folder), as for opened files."""
    return user_data_dir() / "cases"


def camera_list() -> list[str]:
    """Cameras this machine shows (a worker job: it looks at devices)."""
    return list_cameras()


def live_methods() -> list[tuple[str, str]]:
    """(id, label) of the segmentation methods fit for live video: the installed nets."""
    from engine.predict.fluoro import installed_methods, method_label

    return [(m, method_label(m)) for m in installed_methods() if m not in LIVE_UNSUITABLE]


def make_segmenter(method: str):
    """The segmentation net for live frames (loads and checks the weights, builds the fast path)."""
    from engine.predict.fluoro import FluoroSegPredictor

    if method in LIVE_UNSUITABLE:
        raise ValueError(f"{LIVE_UNSUITABLE[method]}; pick a trained net.")
    return FluoroSegPredictor(method)


def check_source(choice: SourceChoice) -> FrameSource:
    """The source of `choice`, opened once and closed again, so that a wrong path, a missing producer or a busy
    camera is said now (SourceError) instead of as a lost signal; the phantom renders (and caches) its clip."""
    if choice.source_type == "file" and not choice.target:
        raise SourceError("Choose a video file (any format OpenCV or PyAV reads, or an OncoLens .npy frame stack).")
    if choice.source_type == "file" and not Path(choice.target).is_file():
        raise SourceError(f"Video file {choice.target} does not exist: check the path, or pick the file with "
                          "Browse….")
    source = open_source(choice.source_type, choice.target, **choice.options)
    source.open()
    source.close()
    return source


def prepare_live(choice: SourceChoice, method: str, segmenter_factory: Callable[[str], object] = make_segmenter
                 ) -> tuple[FrameSource, object]:
    """Worker job for Start: the checked source and the loaded segmenter."""
    source = check_source(choice)
    return source, segmenter_factory(method)


def grey_frame(image: np.ndarray) -> np.ndarray:
    """A frame as the grey NIR image the cases hold (a colour grab is averaged, keeping its type)."""
    if image.ndim == 2:
        return image
    return np.round(image.astype(np.float32).mean(axis=2)).astype(image.dtype)


# ---------------------------------------------------------------------------------------------- frozen frame


def make_classifier():
    """The glioma FL-CNN cascade on NIR-II fluorescence (three nets: tumor, then grade and Ki-67)."""
    from engine.predict.glioma import GliomaCascadePredictor

    return GliomaCascadePredictor("FL")


def classify_frame(classifier, overlay: Overlay) -> Prediction:
    """The FL-CNN cascade on the frozen frame (no Grad-CAM: the answer is what the surgeon asked for)."""
    frame = overlay.frame
    modality = (getattr(classifier, "modalities", None) or ("FL",))[0]
    return classifier.predict({modality: image_of(modality, grey_frame(frame.image), bit_depth=frame.bit_depth)},
                              explain=False)


def frame_prediction(overlay: Overlay, segmenter=None) -> Prediction:
    """The overlay on screen as a segmentation Prediction of its frame: the probability map at the frame's size,
    the tumor mask at the threshold, the contours exactly as drawn, the frame-level call."""
    import cv2

    from engine.seg.contours import region_count

    frame = overlay.frame
    h, w = frame.image.shape[:2]
    probability = cv2.resize(overlay.work.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    mask = probability >= overlay.threshold
    make = getattr(segmenter, "new_prediction", None)
    prediction = make("live") if make is not None else Prediction(family="fluoro_seg", variant=overlay.method)
    prediction.masks["tumor"] = mask
    prediction.contours["tumor"] = [np.asarray(c, dtype=float) for c in overlay.contours]
    prediction.heatmaps["tumor/NIR"] = probability
    prediction.set_result("tumor", "tumor" if mask.any() else "no tumor", float(probability.max()),
                          overlay.threshold)
    prediction.measures.update(area_px=int(mask.sum()), regions=region_count(mask))
    prediction.timings_ms = dict(overlay.timings_ms)
    prediction.notes.append(f"computed live on frame {frame.number}"
                            + ("" if overlay.smoothing is None else
                               f", probability smoothed over frames (EMA w={overlay.smoothing:.2f})"))
    return prediction


def save_frame_case(store, overlay: Overlay, *, source_label: str = "", spacing_mm=None, segmenter=None,
                    classification: Prediction | None = None, actor: str = ACTOR) -> str:
    """Keep the frozen frame and its prediction as a fluorescence-frame case (bundle + store); its id."""
    frame = overlay.frame
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(frame.wall))
    notes = f"Frozen live frame {frame.number} from {source_label or 'a live source'} at {stamp}."
    if classification is not None:
        calls = ", ".join(f"{task} {r.call}" + ("" if r.probability is None else f" (p={r.probability:.2f})")
                          for task, r in classification.tasks.items())
        notes += f" FL-CNN on this frame: {calls}."
    case = Case(id=Case.new_id("live-frame"), kind="fluoro_frame", notes=notes)
    meta = ImageMeta(int(frame.bit_depth), COUNTS, tuple(spacing_mm) if spacing_mm else None,
                     source={"live_source": source_label, "frame_number": int(frame.number)})
    case.add_image("NIR", grey_frame(frame.image), meta)
    prediction = frame_prediction(overlay, segmenter)
    case.predictions = [prediction]
    folder = write_bundle(case, cases_root() / case.id)
    store.add_case(case, folder, actor=actor)
    store.add_prediction(case.id, prediction, actor=actor)
    return case.id


# ---------------------------------------------------------------------------------------------- recording


def start_recording(source: FrameSource) -> ClipRecorder:
    """A recorder writing into a new case folder (its name becomes the video case's id)."""
    case_id = Case.new_id("live-video")
    return ClipRecorder(cases_root() / case_id, source=source.label, fps=source.nominal_fps,
                        spacing_mm=source.spacing_mm)


@dataclass
class FinishedRecording:
    case_id: str | None  # None: nothing was recorded (the folder is left empty of frames)
    summary: RecordingSummary


def finish_recording(store, recorder: ClipRecorder, actor: str = ACTOR) -> FinishedRecording:
    """Drain and close the clip, then make it a video case in the store."""
    from engine.kinds.fluoro_video import save_recording

    summary = recorder.stop()
    if summary.frames == 0:
        return FinishedRecording(None, summary)
    case = save_recording(store, summary.folder, actor)
    return FinishedRecording(case.id, summary)


def recover_interrupted_recordings(store) -> list[str]:
    """Recordings an earlier session left unsaved (killed mid-recording), saved now: their case ids."""
    from engine.kinds.fluoro_video import recover_recordings

    root = cases_root()
    return recover_recordings(store, root, actor=ACTOR) if root.is_dir() else []
