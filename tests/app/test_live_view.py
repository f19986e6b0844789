"""The live view, offscreen, with no camera and no GPU: the phantom and file sources through the whole view (frame,
yellow outline, heat layer, HUD), the keys (Space freeze, C classify, S save), signal lost and back, and the GUI
thread doing nothing but drawing."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt

from app import theme
from app.live.hud import hud_lines
from app.main_window import BANNER_TEXT
from engine.live.sources import SourceError, VideoFileSource
from tests.app.live_fakes import SIZE, WAIT_MS, BlobSegmenter, drawn_at_least, live_store, make_live, phantom

pytestmark = pytest.mark.gui
__all__ = ["live_store", "make_live"]  # fixtures used here


def hud_text(window) -> str:
    return window.hud.info.text()


def press(qtbot, window, key) -> None:
    window.activateWindow()
    qtbot.keyClick(window, key)


def test_phantom_streams_with_the_yellow_outline_heat_layer_and_hud(qtbot, make_live):
    window = make_live()
    segmenter = BlobSegmenter()
    window.start(phantom(), segmenter)
    qtbot.waitUntil(drawn_at_least(window, 8), timeout=WAIT_MS)
    assert window.banner.text() == BANNER_TEXT and window.banner.isVisible()
    assert window.panel.image.image.shape == (SIZE, SIZE)
    xs, ys = window.outline.getData()
    assert len(xs) > 10 and np.nanmax(xs) <= SIZE + 1 and window.outline.opts["pen"].color().name() == theme.PREDICTION
    low, high = window.panel.levels
    assert 0 <= low < high <= 4095  # the phantom is 12-bit: the window sits inside its range
    qtbot.waitUntil(lambda: "p50" in hud_text(window) and "–" not in hud_text(window), timeout=WAIT_MS)
    text = hud_text(window)
    for word in ("phantom NIR video 256 px", "UNet · test path", "fps", "dropped", "capture→overlay", "p99"):
        assert word in text
    assert "smoothing" not in text
    assert window.last_update.stats["capture_to_overlay_p50_ms"] > 0
    # smoothing, stated in the HUD
    window.overlay.smoothing_box.setChecked(True)
    assert window.session.pipeline.settings.smoothing == 0.5
    qtbot.waitUntil(lambda: "smoothing on (EMA w=0.50)" in hud_text(window), timeout=WAIT_MS)
    # the heat layer: the probability map of the very frame on screen, with the outline drawn from it
    window.overlay.heat_box.setChecked(True)
    qtbot.waitUntil(drawn_at_least(window, 2), timeout=WAIT_MS)
    assert window.panel.heat.isVisible() and window.panel._heat_source is window.shown.work
    press(qtbot, window, Qt.Key.Key_H)
    assert not window.overlay.heat_box.isChecked() and not window.panel.heat.isVisible()


def test_a_video_file_and_a_16_bit_frame_stack_play_to_their_end(qtbot, make_live, tmp_path):
    window = make_live()
    clip = phantom(frames=12, realtime=False, loop=False)
    clip.open()
    frames = [clip.read().image for _ in range(12)]
    avi = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (SIZE, SIZE), isColor=False)
    for image in frames:
        writer.write((image >> 4).astype(np.uint8))
    writer.release()
    window.start(VideoFileSource(avi), BlobSegmenter())  # at the file's rate: a 0.4 s clip
    qtbot.waitUntil(lambda: not window.session.running, timeout=WAIT_MS)
    assert window.frames_drawn >= 1 and window.hud.notice_text() == "Source ended\nfile clip.avi"
    assert window.last_update.stats["frames_in"] == 12
    # an OncoLens frame stack keeps the sensor's 12 bits; its window/level stays inside them
    stack = tmp_path / "stack.npy"
    np.save(stack, np.stack(frames))
    stack.with_suffix(".json").write_text(json.dumps({"fps": 30, "bit_depth": 12}))
    window.picker.set_source_type("file")
    window.picker.file_edit.setText(str(stack))
    qtbot.waitUntil(lambda: window.method_combo.count() > 0, timeout=WAIT_MS)
    window.start_from_picker()
    qtbot.waitUntil(lambda: window.session.running, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not window.session.running, timeout=WAIT_MS)
    assert window.panel.image.image.dtype == np.uint16 and window.last_update.stats["frames_in"] == 12
    assert window.panel.levels[1] <= 4095


def test_a_source_that_cannot_open_is_said_with_the_fix(qtbot, make_live, tmp_path, message_boxes):
    window = make_live()
    qtbot.waitUntil(lambda: window.method_combo.count() > 0, timeout=WAIT_MS)
    window.picker.set_source_type("file")
    window.picker.file_edit.setText(str(tmp_path / "missing.avi"))
    window.start_from_picker()
    qtbot.waitUntil(lambda: bool(message_boxes["critical"]), timeout=WAIT_MS)
    title, text = message_boxes["critical"][-1]
    assert "missing.avi" in text and "does not exist" in text and "Browse" in text
    assert not window.session.running and window.picker.start_button.isEnabled()
    window.picker.set_source_type("genicam")
    window.picker.producer_edit.setText("")
    window.start_from_picker()
    qtbot.waitUntil(lambda: len(message_boxes["critical"]) == 2, timeout=WAIT_MS)
    assert "GenTL producer" in message_boxes["critical"][-1][1]
    with pytest.raises(SourceError, match="video file"):
        from app.live.jobs import SourceChoice, check_source

        check_source(SourceChoice("file", ""))


def test_space_freezes_c_classifies_s_saves_the_frame_as_a_case(qtbot, make_live, live_store):
    window = make_live()
    saved = []
    window.case_saved.connect(saved.append)
    window.start(phantom(), BlobSegmenter())
    qtbot.waitUntil(drawn_at_least(window, 3), timeout=WAIT_MS)
    press(qtbot, window, Qt.Key.Key_Space)
    assert window.session.frozen and "FROZEN" in window.hud.frozen.text()
    frozen, drawn, seen = window.shown, window.frames_drawn, window.last_update.stats["frames_in"]
    qtbot.waitUntil(lambda: window.last_update.stats["frames_in"] >= seen + 10, timeout=WAIT_MS)
    assert window.shown is frozen and window.frames_drawn == drawn  # capture goes on, the screen keeps the frame
    press(qtbot, window, Qt.Key.Key_C)
    qtbot.waitUntil(lambda: window.classification is not None, timeout=WAIT_MS)
    assert window.classification[0] is frozen
    result = window.actions.result.text()
    assert f"FL-CNN on frame {frozen.frame.number}" in result and "0.90" in result and "threshold 0.50" in result
    assert "FL-CNN: tumor 0.90" in window.hud.frozen.text()
    press(qtbot, window, Qt.Key.Key_S)
    qtbot.waitUntil(lambda: bool(saved), timeout=WAIT_MS)
    case = live_store.load_case(saved[0])
    assert case.kind == "fluoro_frame" and "FL-CNN on this frame" in case.notes
    image = case.images["NIR"]
    assert np.array_equal(image.array, frozen.frame.image) and image.meta.bit_depth == 12
    (prediction,) = case.predictions
    assert prediction.contours["tumor"] and prediction.masks["tumor"].shape == (SIZE, SIZE)
    assert len(prediction.contours["tumor"]) == len(frozen.contours)
    assert [s.summary.model for s in live_store.predictions_for(case.id)] == ["fluoro_seg[unet]"]
    press(qtbot, window, Qt.Key.Key_Space)
    assert not window.session.frozen and not window.hud.frozen.isVisible()
    # the frame the model was on at the freeze arrives after the resume: seconds old, it is not drawn
    in_flight = replace(frozen, frame=replace(frozen.frame, number=frozen.frame.number + 1))
    window._on_update(replace(window.last_update, overlay=in_flight))
    assert window.shown is not in_flight
    qtbot.waitUntil(drawn_at_least(window, 2), timeout=WAIT_MS)


def test_signal_lost_is_shown_and_the_stream_comes_back(qtbot, make_live):
    window = make_live()
    source = phantom(timeout_s=0.2)
    window.start(source, BlobSegmenter())
    qtbot.waitUntil(drawn_at_least(window, 3), timeout=WAIT_MS)
    source.unplug()
    qtbot.waitUntil(lambda: window.signal_lost and window.hud.notice.isVisible(), timeout=WAIT_MS)
    assert window.hud.notice_text().startswith("Signal lost — reconnecting…")
    assert window.shown is not None  # the last frame stays on screen under the notice
    source.replug()
    qtbot.waitUntil(lambda: not window.hud.notice.isVisible(), timeout=WAIT_MS)
    qtbot.waitUntil(drawn_at_least(window, 3), timeout=WAIT_MS)
    stats = window.last_update.stats
    assert stats["signal_losses"] >= 1 and stats["reconnects"] >= 1
    assert "reconnects" in hud_text(window)


def test_the_gui_thread_never_runs_inference_or_contouring(qtbot, make_live, monkeypatch, FakeCascade):
    import engine.live.pipeline as pipeline
    import engine.seg.contours as contours

    calls: dict[str, list[bool]] = {"contour": [], "classify": [], "region_count": []}

    def recorded(name, fn):
        def wrapper(*args, **kwargs):
            calls[name].append(threading.current_thread() is threading.main_thread())
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(pipeline, "mask_to_contours", recorded("contour", pipeline.mask_to_contours))
    monkeypatch.setattr(contours, "region_count", recorded("region_count", contours.region_count))
    monkeypatch.setattr(FakeCascade, "predict", recorded("classify", FakeCascade.predict))
    window = make_live()
    saved = []
    window.case_saved.connect(saved.append)
    segmenter = BlobSegmenter()
    window.start(phantom(), segmenter)
    qtbot.waitUntil(drawn_at_least(window, 5), timeout=WAIT_MS)
    window.overlay.smoothing_box.setChecked(True)
    window.overlay.heat_box.setChecked(True)
    qtbot.waitUntil(lambda: window.panel.has_heat, timeout=WAIT_MS)
    window.classify()
    qtbot.waitUntil(lambda: window.classification is not None, timeout=WAIT_MS)
    window.save_frame()
    qtbot.waitUntil(lambda: bool(saved), timeout=WAIT_MS)
    main = threading.main_thread()
    assert segmenter.threads and not any(t is main for t in segmenter.threads)
    assert all(calls.values()) and not any(any(v) for v in calls.values()), calls


def test_hud_lines_say_faults_and_smoothing():
    from app.live.session import LiveUpdate

    stats = {"fps_in": 30.0, "fps_out": 14.5, "dropped": 7, "corrupt": 2, "capture_to_overlay_p50_ms": 71.2,
             "capture_to_overlay_p99_ms": 118.9}
    update = LiveUpdate("streaming", "", None, (np.zeros(0), np.zeros(0)), stats, None, "unetplusplus",
                        "ONNX Runtime", "camera 0", 0.3)
    assert hud_lines(update) == ["camera 0", "UNet++ · ONNX Runtime", "in 30.0 fps · out 14.5 fps · dropped 7",
                                 "capture→overlay p50 71 ms · p99 119 ms", "smoothing on (EMA w=0.30)", "corrupt 2"]


def test_live_opens_from_the_main_window_and_saved_cases_reach_the_browser(qtbot, make_window, monkeypatch):
    monkeypatch.setattr("app.live.jobs.make_segmenter", lambda method: BlobSegmenter())
    window = make_window(auto_predict=False)
    window.live_action.trigger()
    live = window.live_window
    assert live is not None and live.isVisible() and live.store is window.store
    assert window.live_action.shortcut().toString() == "Ctrl+Shift+L"
    qtbot.waitUntil(lambda: live.method_combo.count() > 0, timeout=WAIT_MS)
    live.picker.set_source_type("phantom")
    live.picker.phantom_size.setCurrentIndex(0)  # 256 px
    live.start_from_picker()
    qtbot.waitUntil(lambda: live.frames_drawn >= 2, timeout=WAIT_MS)
    assert live.camera.note.text() == "This source has no settings to adjust."
    live.save_frame()
    qtbot.waitUntil(lambda: any(s.kind == "fluoro_frame" for s in window.case_browser._summaries), timeout=WAIT_MS)
    window.close()
    qtbot.waitUntil(lambda: not live.session.running, timeout=WAIT_MS)


@pytest.mark.slow
def test_the_bench_hook_runs_the_view_and_measures_the_gui_thread(qtbot):
    from app.launcher import run_live_view_bench

    result = run_live_view_bench(phantom(), BlobSegmenter(), 1.5, smoothing=0.5)
    assert result["frames_drawn"] > 5 and result["heartbeats"] > 20
    assert 0 <= result["gui_stall_p99_ms"] <= result["gui_stall_max_ms"]
    # an overlay is handed to the view just before the pipeline counts it: at most one drawn is not yet counted
    assert result["stats"]["processed"] >= result["frames_drawn"] - 1
    assert "capture_to_overlay_p99_ms" in result["stats"]


@pytest.mark.slow
def test_oncolens_bench_live_measures_the_real_view(qtbot, tmp_path, capsys):
    """The entry point plugs the live view into `bench live`: the table and the CSV say the GUI was the view."""
    from app.launcher import main

    out = tmp_path / "live.csv"
    assert main(["bench", "live", "--seconds", "1", "--size", "128", "--path", "cpu:eager", "--out", str(out)]) == 0
    assert "GUI: live view (offscreen)" in capsys.readouterr().out
    header, row = out.read_text().splitlines()[:2]
    columns = dict(zip(header.split(","), row.split(","), strict=True))
    assert columns["gui"] == "live view (offscreen)" and float(columns["gui_stall_max_ms"]) >= 0
    assert float(columns["fps_processed"]) > 0


def test_camera_settings_show_what_the_source_reports_and_are_set_off_the_gui_thread(qtbot, make_live):
    from engine.live.sources import Control, PhantomSource

    class AdjustableSource(PhantomSource):
        """The phantom with a camera's settings: resolution, exposure and gain (no frame rate control)."""

        def __init__(self, **options) -> None:
            super().__init__(phantom().settings, **options)
            self.values = {"width": 1280.0, "height": 720.0, "exposure": 8.0, "gain": 2.0}
            self.asked: list[tuple[str, object, bool]] = []

        def controls(self):
            units = {"exposure": "ms", "gain": "dB"}
            return {name: Control(name, value, 0.0, 48.0 if name == "gain" else None, unit=units.get(name, ""))
                    for name, value in self.values.items()}

        def set_control(self, name, value) -> bool:
            self.asked.append((name, value, threading.current_thread() is threading.main_thread()))
            if name == "gain":
                self.values[name] = float(value)
                return True
            return False

    window = make_live()
    source = AdjustableSource()
    window.start(source, BlobSegmenter())
    qtbot.waitUntil(lambda: "gain" in window.camera.editors, timeout=WAIT_MS)
    editors = window.camera.editors
    assert set(editors) == {"resolution", "exposure", "gain"}
    assert editors["resolution"].currentText() == "1280x720" and editors["gain"].suffix() == " dB"
    assert editors["gain"].maximum() == 48.0
    window.camera.control_changed.emit("gain", 6.0)
    qtbot.waitUntil(lambda: window.camera.editors["gain"].value() == 6.0, timeout=WAIT_MS)  # read back
    window.camera.control_changed.emit("exposure", 20.0)
    qtbot.waitUntil(lambda: "did not take exposure" in window.message.text(), timeout=WAIT_MS)
    assert [(n, v) for n, v, _ in source.asked] == [("gain", 6.0), ("exposure", 20.0)]
    assert not any(on_gui for *_, on_gui in source.asked)
