"""Recording through the live view and reviewing video cases: R records every frame the source delivers (with the
overlays) into a video case that appears in the store and plays back with stepping; recordings a killed session
left behind are saved at start; the demo video case is recorded as the live view records."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt

from app.views.video_view import PREDICTED, RECORDED, VideoView
from engine.data import Prediction
from engine.kinds.fluoro_video import save_recording
from engine.live.recording import ClipRecorder, read_clip
from engine.predict.fluoro_video import frame_key
from tests.app.live_fakes import WAIT_MS, BlobSegmenter, live_store, make_live, phantom

pytestmark = pytest.mark.gui
__all__ = ["live_store", "make_live"]  # fixtures used here


def open_video(qtbot, window, case_id: str) -> VideoView:
    window.case_browser.refresh()
    window.open_case(case_id)
    qtbot.waitUntil(lambda: window.current_case is not None and window.current_case.id == case_id, timeout=WAIT_MS)
    view = window.current_view()
    assert isinstance(view, VideoView)
    return view


def test_recording_through_the_gui_keeps_every_source_frame_and_reviews_with_stepping(qtbot, make_live,
                                                                                         make_window):
    window = make_window(auto_predict=False)
    live = make_live(store=window.store)
    live.case_saved.connect(lambda case_id: window.case_browser.refresh())
    saved = []
    live.case_saved.connect(saved.append)
    delivered: list[int] = []
    lock = threading.Lock()

    def log(frame) -> None:
        with lock:
            delivered.append(frame.number)

    live.start(phantom(frames=40), BlobSegmenter(delay_s=0.05))  # slower than the source: frames are dropped
    qtbot.waitUntil(lambda: live.frames_drawn >= 2, timeout=WAIT_MS)
    live.session.pipeline.add_frame_consumer(log)
    live.activateWindow()
    qtbot.keyClick(live, Qt.Key.Key_R)
    qtbot.waitUntil(lambda: live.recording, timeout=WAIT_MS)
    recorder = live.session.recorder
    qtbot.waitUntil(lambda: recorder.frames >= 45, timeout=WAIT_MS)  # across the phantom's loop
    assert live.hud.recording.text().startswith("● REC 00:0") and "frames" in live.hud.recording.text()
    qtbot.keyClick(live, Qt.Key.Key_R)
    assert not live.recording and not live.hud.recording.isVisible()
    qtbot.waitUntil(lambda: bool(saved), timeout=WAIT_MS)
    stats = live.last_update.stats
    assert stats["dropped"] > 0  # the model had no time for every frame; the recording still has them all
    case = window.store.load_case(saved[0])
    assert case.kind == "fluoro_video"
    clip = read_clip(case.attachments["frames"].parent)
    assert clip.complete and len(clip.frames) == len(clip.numbers) >= 45
    with lock:
        start = delivered.index(clip.numbers[0])
        assert clip.numbers == delivered[start:start + len(clip.numbers)]  # every frame delivered meanwhile
    assert np.all(np.diff(clip.times) > 0)
    assert clip.overlays and all(r["contours"] and r["timings_ms"] for r in clip.overlays.values())
    assert len(clip.overlays) < len(clip.numbers)
    live.close()
    # the case is in the store and plays back in the review view, stepping frame by frame
    qtbot.waitUntil(lambda: any(s.id == case.id for s in window.case_browser._summaries), timeout=WAIT_MS)
    view = open_video(qtbot, window, case.id)
    assert view.frame_count == len(clip.numbers) and view.index == 0
    assert view.outline_combo.currentData() == RECORDED
    window.activateWindow()
    view.setFocus()
    qtbot.waitUntil(lambda: view.hasFocus(), timeout=WAIT_MS)
    qtbot.keyClick(view, Qt.Key.Key_Right)
    qtbot.keyClick(view, Qt.Key.Key_Period)
    assert view.index == 2
    qtbot.keyClick(view, Qt.Key.Key_Comma)
    assert view.index == 1
    view.next_button.click()
    assert view.index == 2 and f"Frame 3 / {view.frame_count}" in view.position.text()
    assert f"camera frame {clip.numbers[2]}" in view.position.text()
    # an outline computed on an earlier frame says which
    earlier = next(i for i, n in enumerate(clip.numbers) if n not in clip.overlays and n > min(clip.overlays))
    view.go_to(earlier)
    source = int(view.current_outlines().source[earlier])
    assert source < clip.numbers[earlier]
    gap = clip.numbers[earlier] - source
    assert f"outline from frame {source} ({gap} frame{'' if gap == 1 else 's'} earlier)" in view.position.text()
    assert view.layer.items  # drawn in yellow over that frame
    qtbot.keyClick(view, Qt.Key.Key_End)
    assert view.index == view.frame_count - 1
    view.go_to(0)
    qtbot.keyClick(view, Qt.Key.Key_Space)
    assert view.playing
    qtbot.waitUntil(lambda: view.index >= 3, timeout=WAIT_MS)
    view.play_button.click()
    assert not view.playing


def test_review_shows_predict_again_contours_and_where_each_comes_from(qtbot, make_window, tmp_path):
    window = make_window(auto_predict=False)
    source = phantom(size=64, frames=12, realtime=False, loop=False)
    source.open()
    recorder = ClipRecorder(tmp_path / "clip-01", source=source.label, fps=30.0)
    square = np.array([[10, 10], [10, 30], [30, 30], [30, 10]], dtype=float)
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
        recorder.add_frame(frame)
    from engine.live.pipeline import Overlay

    for frame in frames[::3]:
        recorder.add_overlay(Overlay(frame, "unet", [square], 0.8, 0.5, 400.0, np.zeros((4, 4), np.float32), None,
                                     timings_ms={"inference": 1.0}))
    recorder.stop()
    case = save_recording(window.store, tmp_path / "clip-01", "test")
    view = open_video(qtbot, window, case.id)
    assert view.frame_count == 12
    assert "outline computed on this frame, p = 0.80" in view.position.text()
    view.go_to(1)
    assert "(1 frame earlier)" in view.position.text() or "(2 frames earlier)" in view.position.text()
    # "predict again": per-frame contours keyed by frame index, every second frame
    prediction = Prediction(family="fluoro_seg", variant="unetplusplus")
    for index in range(0, 12, 2):
        prediction.contours[frame_key(index)] = [square + index]
    prediction.measures["frame_step"] = 2
    view.show_prediction([prediction])
    labels = [view.outline_combo.itemText(i) for i in range(view.outline_combo.count())]
    assert labels[1] == "Predicted again (UNet++, every 2 frames)" and labels[-1] == "No outline"
    view.outline_combo.setCurrentIndex(view.outline_combo.findData(PREDICTED))
    view.go_to(5)
    assert "outline from frame index 4 (1 frame earlier)" in view.position.text()
    xs, ys = view.layer.items[0].getData()
    assert np.isclose(xs.min(), 10 + 4 + 0.5) and np.isclose(ys.min(), 10 + 4 + 0.5)


def test_recordings_left_by_a_killed_session_are_saved_at_start(qtbot, make_window):
    from app.live.jobs import cases_root
    from app.main import recover_recordings_at_start

    window = make_window(auto_predict=False)
    source = phantom(size=64, frames=20, realtime=False, loop=False)
    source.open()
    recorder = ClipRecorder(cases_root() / "live-video-killed", source=source.label, fps=30.0, segment_frames=8)
    for _ in range(20):
        recorder.add_frame(source.read())
    qtbot.waitUntil(lambda: recorder.frames == 20 and recorder.backlog == 0, timeout=WAIT_MS)
    recover_recordings_at_start(window)  # the recorder was never stopped: as after a kill
    qtbot.waitUntil(lambda: any(s.id == "live-video-killed" for s in window.case_browser._summaries), timeout=WAIT_MS)
    case = window.store.load_case("live-video-killed")
    assert case.images["NIR"].array.shape[0] == 16  # the frames up to the last flushed segment
    assert "interrupted" in case.notes and "Recovered 1 interrupted recording" in window.statusBar().currentMessage()
    recorder.stop()


def test_the_demo_video_case_is_recorded_as_the_live_view_records(qtbot, make_window, tmp_path, monkeypatch):
    import engine.predict.fluoro as fluoro
    from engine.kinds.fluoro_video import write_demo_recording

    monkeypatch.setattr(fluoro, "installed_methods", lambda: ["unet"])
    monkeypatch.setattr(fluoro, "FluoroSegPredictor", lambda method: BlobSegmenter())
    write_demo_recording(tmp_path / "demo-video-01", size=64, frames=12)
    window = make_window(auto_predict=False)
    window.store.import_bundles(tmp_path)
    view = open_video(qtbot, window, "demo-video-01")
    assert view.frame_count == 12 and RECORDED in view.outlines
    assert "computed on this frame" in view.position.text() and view.layer.items
    assert window.current_case.notes.startswith("Synthetic phantom NIR video (demo)")
