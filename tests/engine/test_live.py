"""Live video without a camera: the phantom video, file and GenICam sources, the latest-frame pipeline (dropping
under a slow model, signal loss and reconnection, corrupt frames, smoothing), and recording round trips,
including a recorder killed mid-clip."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.live.pipeline import ENDED, SIGNAL_LOST, STREAMING, LatestSlot, LivePipeline, LiveSettings
from engine.live.recording import ClipRecorder, read_clip
from engine.live.sources import (
    CameraSource,
    CorruptFrame,
    GenICamSource,
    PhantomSource,
    SignalLost,
    SourceError,
    VideoFileSource,
    as_frame_image,
)
from engine.phantoms.fluoro_video import VideoSettings, render_clip
from engine.preprocess.fluoro import frame_geometry

SMALL = VideoSettings(size=128, frames=40, seed=3)


class ThresholdSegmenter:
    """A stand-in model: the frame's bright parts, at a 64-pixel work scale; `delay` seconds per frame."""

    method = "bright"
    threshold = 0.5

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.threads: set[str] = set()

    def work_probabilities(self, image, bit_depth=None):
        self.threads.add(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        geometry = frame_geometry(image.shape[:2], 64)
        small = cv2.resize(image.astype(np.float32), (geometry.work_width, geometry.work_height),
                           interpolation=cv2.INTER_AREA)
        z = (small - small.mean()) / max(float(small.std()), 1e-6)
        return (1 / (1 + np.exp(-(z - 1.5) * 3))).astype(np.float32), geometry, {"inference": 0.0}


def _run(pipeline: LivePipeline, until, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and not until():
        time.sleep(0.02)
    assert until(), f"condition not reached in {timeout} s (status {pipeline.status}, {pipeline.stats.snapshot()})"


def test_phantom_video_moves_breathes_changes_gain_and_drops_frames():
    clip = render_clip(VideoSettings(size=128, frames=90, seed=5, drop_rate=0.05))
    again = render_clip(VideoSettings(size=128, frames=90, seed=5, drop_rate=0.05))
    assert np.array_equal(clip.frames, again.frames) and np.array_equal(clip.numbers, again.numbers)
    assert clip.frames.dtype == np.uint16 and clip.frames.shape == (90, 128, 128) and clip.bit_depth == 12
    assert clip.masks.any(axis=(1, 2)).all()  # every frame shows the tumor
    centroids = np.array([np.argwhere(m).mean(axis=0) for m in clip.masks])
    assert np.ptp(centroids[:, 0]) > 1.5  # breathing moves it by pixels, not a fraction of one
    areas = clip.masks.sum(axis=(1, 2))
    assert areas.max() / areas.min() > 1.02  # and deforms it
    means = clip.frames.reshape(90, -1).mean(axis=1)
    assert means.max() / means.min() > 1.1  # gain steps
    assert not np.array_equal(clip.frames[0], clip.frames[1])  # fresh noise every frame
    gaps = np.diff(clip.numbers)
    assert set(np.unique(gaps)) <= {1, 2} and (gaps == 2).any()


def test_latest_slot_keeps_only_the_newest_item():
    slot = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True  # 1 was never taken: dropped
    assert slot.take(0) == 2 and slot.take(0) is None


def test_slow_model_drops_frames_and_always_takes_the_newest(monkeypatch):
    source = PhantomSource(SMALL, realtime=True, loop=True)
    captured: list[tuple[float, int]] = []
    overlays = []
    segmenter = ThresholdSegmenter(delay=0.08)  # 80 ms a frame against a 33 ms frame period
    pipeline = LivePipeline(source, segmenter, on_overlay=overlays.append)
    pipeline.add_frame_consumer(lambda f: captured.append((f.captured, f.number)))
    pipeline.start()
    try:
        _run(pipeline, lambda: len(overlays) >= 8)
    finally:
        pipeline.stop()
    stats = pipeline.stats.snapshot()
    assert stats["dropped"] > 0 and stats["processed"] < stats["frames_in"]
    assert segmenter.threads == {"live-inference"}
    for overlay in overlays:
        taken = overlay.stamps["taken"]
        newest = max(number for t, number in captured if t <= taken)
        assert overlay.frame.number == newest  # never a stale frame out of a queue
        # bounded: a frame waits at most for the model's frame in progress (80 ms), here with generous slack
        assert taken - overlay.stamps["captured"] < 1.0


def test_file_sources_npy_stack_and_avi_play_through_the_pipeline_to_the_end(tmp_path):
    clip = render_clip(SMALL)
    stack = tmp_path / "clip.npy"
    np.save(stack, clip.frames[:12])
    (tmp_path / "clip.json").write_text(json.dumps({"fps": 25, "bit_depth": 12}))
    avi = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (128, 128), False)
    for frame in clip.frames[:12]:
        writer.write((frame >> 4).astype(np.uint8))
    writer.release()
    for path, dtype, depth in ((stack, np.uint16, 12), (avi, np.uint8, 8)):
        source = VideoFileSource(path, realtime=False)
        overlays = []
        numbers = []
        pipeline = LivePipeline(source, ThresholdSegmenter(), on_overlay=overlays.append)
        pipeline.add_frame_consumer(lambda f, seen=numbers: seen.append((f.number, f.image.dtype, f.bit_depth)))
        pipeline.start()
        _run(pipeline, lambda p=pipeline: p.status == ENDED)
        pipeline.stop()
        assert [n for n, _, _ in numbers] == list(range(1, 13))
        assert {(d, b) for _, d, b in numbers} == {(np.dtype(dtype), depth)}
        assert source.nominal_fps == pytest.approx(25.0)
        assert overlays and all(o.contours for o in overlays[:1])


def test_signal_lost_and_back_without_restarting():
    source = PhantomSource(SMALL, realtime=True, timeout_s=0.2)
    statuses = []
    overlays = []
    pipeline = LivePipeline(source, ThresholdSegmenter(), on_overlay=overlays.append,
                            on_status=lambda s, d: statuses.append(s), settings=LiveSettings(reconnect_s=0.1))
    pipeline.start()
    try:
        _run(pipeline, lambda: len(overlays) >= 3)
        source.unplug()
        _run(pipeline, lambda: pipeline.status == SIGNAL_LOST)
        before = len(overlays)
        time.sleep(0.3)
        source.replug()
        _run(pipeline, lambda: pipeline.status == STREAMING and len(overlays) > before + 2)
    finally:
        pipeline.stop()
    stats = pipeline.stats.snapshot()
    assert stats["signal_losses"] >= 1 and stats["reconnects"] >= 1
    changes = [s for i, s in enumerate(statuses) if i == 0 or s != statuses[i - 1]]
    assert changes[:3] == [STREAMING, SIGNAL_LOST, STREAMING]


def test_corrupt_frames_are_skipped_and_counted():
    source = PhantomSource(SMALL, realtime=False, loop=False, corrupt_every=7)
    overlays = []
    pipeline = LivePipeline(source, ThresholdSegmenter(), on_overlay=overlays.append)
    pipeline.start()
    _run(pipeline, lambda: pipeline.status == ENDED)
    pipeline.stop()
    stats = pipeline.stats.snapshot()
    assert stats["corrupt"] == sum(1 for n in source.clip.numbers if n % 7 == 6) > 0
    assert all(o.frame.number % 7 != 6 for o in overlays)
    with pytest.raises(CorruptFrame, match="empty frame"):
        as_frame_image(np.zeros((0, 0), np.uint8), "grabber")
    grey_as_colour = np.repeat(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)[..., None], 3, axis=2)
    assert as_frame_image(grey_as_colour, "grabber").ndim == 2


def test_smoothing_averages_the_probability_maps_and_says_so():
    source = PhantomSource(SMALL, realtime=False, loop=False)
    source.open()
    frames = [source.read() for _ in range(3)]
    plain = LivePipeline(source, ThresholdSegmenter())
    smooth = LivePipeline(source, ThresholdSegmenter(), settings=LiveSettings(smoothing=0.5))
    raw = [plain.process(f) for f in frames]
    ema = [smooth.process(f) for f in frames]
    assert raw[0].smoothing is None and ema[2].smoothing == 0.5
    expected = 0.5 * raw[2].work + 0.25 * raw[1].work + 0.25 * raw[0].work
    np.testing.assert_allclose(ema[2].work, expected, atol=1e-6)
    with pytest.raises(ValueError, match="Smoothing weight"):
        smooth.set_smoothing(1.5)


def test_recording_keeps_every_frame_while_a_slow_model_drops_them(tmp_path):
    source = PhantomSource(SMALL, realtime=True, loop=False)
    recorder = ClipRecorder(tmp_path / "rec", source=source.label, fps=SMALL.fps, segment_frames=8)
    pipeline = LivePipeline(source, ThresholdSegmenter(delay=0.06))
    pipeline.add_frame_consumer(recorder.add_frame)
    pipeline.add_overlay_consumer(recorder.add_overlay)
    pipeline.start()
    _run(pipeline, lambda: pipeline.status == ENDED)
    pipeline.stop()
    summary = recorder.stop()
    stats = pipeline.stats.snapshot()
    assert stats["dropped"] > 0
    clip = read_clip(tmp_path / "rec")
    assert summary.frames == len(clip.frames) == SMALL.frames == stats["frames_in"]
    assert clip.numbers == [int(n) for n in source.clip.numbers]
    assert np.array_equal(np.asarray(clip.frames), source.clip.frames)  # bit-exact 12-bit frames
    assert all(b > a for a, b in zip(clip.times, clip.times[1:]))
    assert clip.times[-1] == pytest.approx(summary.seconds, abs=1e-3)
    assert len(clip.overlays) == summary.overlays == stats["processed"]
    first = clip.overlays[min(clip.overlays)]
    assert {"probability", "contours", "timings_ms", "method"} <= set(first)
    skipped = next(i for i, n in enumerate(clip.numbers) if n not in clip.overlays)
    assert clip.overlay_at(skipped)["number"] < clip.numbers[skipped]  # the overlay shown was an earlier frame's
    assert clip.complete and summary.source_gaps == int(source.clip.numbers[-1]) + 1 - SMALL.frames


KILLED_RECORDER = textwrap.dedent("""
    import sys, time
    from engine.live.recording import ClipRecorder
    from engine.live.sources import PhantomSource
    from engine.phantoms.fluoro_video import VideoSettings
    source = PhantomSource(VideoSettings(size=128, frames=40, seed=3), realtime=True, loop=True)
    source.open()
    recorder = ClipRecorder(sys.argv[1], source="phantom", fps=30, segment_frames=5)
    while True:
        recorder.add_frame(source.read())
""")


def test_a_recorder_killed_mid_clip_leaves_every_flushed_segment_readable(tmp_path):
    from engine.cases.bundle import read_bundle
    from engine.kinds.fluoro_video import recover_recordings
    from engine.store.db import Store

    folder = tmp_path / "cases" / "rec-killed"
    source = PhantomSource(SMALL, realtime=False)
    source.open()  # renders the clip into the shared cache before the child starts
    child = subprocess.Popen([sys.executable, "-c", KILLED_RECORDER, str(folder)], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (folder / "image_NIR.npy").is_file() and len(read_clip(folder).frames) >= 15:
                break
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    clip = read_clip(folder)
    assert not clip.complete
    assert len(clip.frames) >= 15 and len(clip.frames) % 5 == 0  # whole segments
    expected = np.concatenate([source.clip.frames] * 3)[: len(clip.frames)]
    assert np.array_equal(np.asarray(clip.frames), expected)
    with Store() as store:
        assert recover_recordings(store, tmp_path / "cases") == ["rec-killed"]
        case = store.load_case("rec-killed")
        assert recover_recordings(store, tmp_path / "cases") == []  # once only
    assert case.kind == "fluoro_video" and case.images["NIR"].axes == "TYX"
    assert case.images["NIR"].array.shape[0] == len(clip.frames)
    assert "interrupted" in case.notes
    assert read_bundle(folder).attachments["frames"].name == "frames.jsonl"


def test_genicam_source_says_what_is_missing_and_reads_a_camera_through_harvesters(tmp_path, monkeypatch):
    monkeypatch.delenv("ONCOLENS_GENTL_PRODUCER", raising=False)
    with pytest.raises(SourceError, match="No GenTL producer is configured.*ONCOLENS_GENTL_PRODUCER"):
        GenICamSource().open()
    with pytest.raises(SourceError, match="does not exist"):
        GenICamSource(tmp_path / "vendor.cti").open()
    producer = tmp_path / "vendor.cti"
    producer.write_bytes(b"\0")

    frames = iter([np.full((32, 48), 1000, np.uint16), None])

    class Buffer:
        def __enter__(self):
            data = next(frames)
            if data is None:
                raise TimeoutError("no buffer")
            component = types.SimpleNamespace(data=data.ravel(), width=48, height=32, data_format="Mono12")
            return types.SimpleNamespace(payload=types.SimpleNamespace(components=[component]))

        def __exit__(self, *exc):
            return False

    class Acquirer:
        remote_device = types.SimpleNamespace(node_map=types.SimpleNamespace(
            AcquisitionFrameRate=types.SimpleNamespace(value=60.0),
            ExposureTime=types.SimpleNamespace(value=5000.0, min=10.0, max=1e6)))

        def start(self): pass
        def stop(self): pass
        def destroy(self): pass
        def fetch(self, timeout): return Buffer()

    class Harvester:
        device_info_list = ["InGaAs camera"]

        def add_file(self, path): self.path = path
        def update(self): pass
        def reset(self): pass
        def create(self, index): return Acquirer()

    module = types.ModuleType("harvesters.core")
    module.Harvester = Harvester
    monkeypatch.setitem(sys.modules, "harvesters", types.ModuleType("harvesters"))
    monkeypatch.setitem(sys.modules, "harvesters.core", module)
    source = GenICamSource(producer)
    source.open()
    assert source.nominal_fps == 60.0 and source.controls()["exposure"].value == 5000.0
    frame = source.read()
    assert frame.image.shape == (32, 48) and frame.bit_depth == 12 and frame.number == 1
    with pytest.raises(SignalLost, match="no frame within"):
        source.read()
    source.close()


def test_a_camera_that_is_not_there_is_named_in_the_error():
    with pytest.raises(SourceError, match="Camera /dev/video97 could not be opened.*Cameras this machine shows"):
        CameraSource("/dev/video97").open()


def test_recorded_clip_becomes_a_video_case_that_predicts_per_frame(tmp_path, monkeypatch):
    import engine.cases.bundle as bundle
    from engine.cases.bundle import read_bundle, write_bundle
    from engine.kinds.fluoro_video import case_from_recording
    from engine.predict.fluoro_video import frame_key
    from engine.service import PredictionService

    source = PhantomSource(VideoSettings(size=128, frames=6, seed=3), realtime=False, loop=False)
    recorder = ClipRecorder(tmp_path / "rec", source="phantom", fps=30)
    source.open()
    while (frame := source.read()) is not None:
        recorder.add_frame(frame)
    recorder.stop()
    monkeypatch.setattr(bundle, "MAP_BYTES", 1024)  # the clip is memory-mapped, as a long one would be
    case = case_from_recording(tmp_path / "rec")
    write_bundle(case, tmp_path / "rec")
    again = read_bundle(tmp_path / "rec")
    assert isinstance(again.images["NIR"].array, np.memmap)
    assert again.images["NIR"].array.shape == (6, 128, 128)
    (pred,) = PredictionService(store=None, actor="test").predict_case(again, explain=False)
    assert pred.family == "fluoro_seg" and pred.measures["frames_analysed"] == 6
    assert sorted(pred.contours) == [frame_key(i) for i in range(6)]
    assert pred.tasks["tumor"].call in ("tumor", "no tumor")


def test_bench_live_prints_a_table_per_path(capsys, tmp_path):
    from engine.cli import main

    out = tmp_path / "live.csv"
    assert main(["bench", "live", "--seconds", "1", "--size", "128", "--path", "cpu:eager", "--headless",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "cpu:eager" in text and "capture-to-overlay" in text and "GUI thread longest stall" in text
    header, row = out.read_text().splitlines()[:2]
    assert header.startswith("device,path,label") and row.startswith("cpu,eager")


def test_source_loop_restarts_numbers_after_the_clip(tmp_path):
    source = PhantomSource(VideoSettings(size=128, frames=5, seed=3, drop_rate=0.0), realtime=False, loop=True)
    source.open()
    numbers = [source.read().number for _ in range(12)]
    assert numbers == list(range(12))
    assert Path(source.clip.frames.filename).parent.name == "phantom-video"
