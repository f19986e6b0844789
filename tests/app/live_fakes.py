"""Stand-ins for the live-view tests: a segmenter with no torch (the bright part of the frame is the 'tumor'), small
phantom sources, and a live window on a fresh store that is closed, with its workers done, at teardown."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from app.workers import pending_workers, wait_for_workers
from engine.live.sources import PhantomSource
from engine.phantoms.fluoro_video import VideoSettings
from engine.store import Store

WAIT_MS = 30_000
SIZE = 256


class BlobSegmenter:
    """Stands in for a segmentation net: a quarter-scale map that is high where the frame is bright (the phantom's
    tumor fluoresces), with the pipeline's Segmenter interface. Records the thread of every call."""

    method = "unet"
    threshold = 0.5

    def __init__(self, delay_s: float = 0.0) -> None:
        self.fast = SimpleNamespace(label="test path")
        self.delay_s = delay_s
        self.calls = 0
        self.threads: list[threading.Thread] = []

    def work_probabilities(self, image: np.ndarray, bit_depth: int | None = None):
        self.calls += 1
        self.threads.append(threading.current_thread())
        if self.delay_s:
            time.sleep(self.delay_s)
        h, w = image.shape[:2]
        grey = image.astype(np.float32) if image.ndim == 2 else image.astype(np.float32).mean(axis=2)
        small = cv2.resize(grey, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
        z = (small - small.mean()) / (small.std() + 1e-6)
        work = (1.0 / (1.0 + np.exp(-(z - 1.5) * 3.0))).astype(np.float32)
        return work, SimpleNamespace(height=h, width=w), {"inference": 0.1}


def phantom(size: int = SIZE, frames: int = 30, **options) -> PhantomSource:
    """A small phantom clip played at 30 fps (rendered once per settings into the test cache)."""
    return PhantomSource(VideoSettings(size=size, frames=frames), **options)


@pytest.fixture
def live_store():
    store = Store()
    yield store
    store.close()


@pytest.fixture
def make_live(qtbot, live_store, FakeCascade):
    """Build a LiveWindow on the test store with the blob segmenter and the fake FL-CNN cascade."""
    from app.live.window import LiveWindow

    windows = []

    def build(store=live_store, **kwargs):
        kwargs.setdefault("segmenter_factory", lambda method: BlobSegmenter())
        kwargs.setdefault("classifier_factory", lambda: FakeCascade("FL", tumor_probability=0.9))
        window = LiveWindow(store, **kwargs)
        qtbot.addWidget(window)
        window.resize(1600, 1000)
        window.show()
        windows.append(window)
        return window

    yield build
    for window in windows:
        window.close()
    assert wait_for_workers(timeout=60), "a worker was still running at teardown"
    assert pending_workers() == 0


def drawn_at_least(window, n: int):
    start = window.frames_drawn
    return lambda: window.frames_drawn >= start + n
