"""The largest image the gate accepts (64 megapixels by default) is predicted within 2 GB of memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
# VmHWM belongs to the process's own memory map; getrusage's ru_maxrss would also count the pytest process
# the child was spawned from (Linux carries the parent's high-water mark across vfork + exec).
MEASURE = """
import sys
from engine.cli import main
code = main(["predict", *sys.argv[1:-1], "--out", sys.argv[-1]])
hwm_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print("PEAK_MB", hwm_kb / 1024, "CODE", code)
"""


def _peak_mb(tmp_path: Path, *args: str) -> float:
    env_home = tmp_path / "home"
    out = subprocess.run([sys.executable, "-c", MEASURE, *args, str(tmp_path / "r.json")], capture_output=True,
                         text=True, timeout=900, cwd=REPO, env={"ONCOLENS_HOME": str(env_home), "PATH": "/usr/bin"})
    line = next(line for line in out.stdout.splitlines() if line.startswith("PEAK_MB"))
    _, peak, _, code = line.split()
    assert code == "0", out.stderr[-2000:]
    return float(peak)


@pytest.mark.slow
def test_a_64_megapixel_white_light_photo_stays_under_2_gb(tmp_path):
    side = 8000  # 64 megapixels, RGB
    yy, xx = np.ogrid[0:side, 0:side]
    blob = np.exp(-((yy - side / 2) ** 2 + (xx - side / 2) ** 2) / (2 * (side / 6) ** 2)).astype(np.float32)
    image = np.empty((side, side, 3), np.uint8)
    for channel, (base, gain) in enumerate(((60, 150), (50, 120), (40, 100))):
        image[..., channel] = (base + gain * blob).astype(np.uint8)
    path = tmp_path / "photo_wl.png"
    cv2.imwrite(str(path), image)
    del image, blob
    assert _peak_mb(tmp_path, str(path)) < 2048
