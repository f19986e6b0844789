"""The app's half of `oncolens bench petct-view`: the real PET-CT view, offscreen, timing slice changes.

A slice change is timed (wall clock, and CPU time of the GUI thread) from `set_slice` to the end of the synchronous repaint of the three planes (the plane
scrolled redraws its CT, PET, Grad-CAM and contours; the other two redraw their crosshair)."""

from __future__ import annotations

import os
import time


def run_petct_view_bench(images: dict, prediction, steps: int) -> dict:
    """{times_ms: {plane: [wall ms per change]}, cpu_ms: {plane: [GUI-thread CPU ms]}, prepare_s: {...}, memory_mib: {...}}."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from app.views.petct_view import PLANES, PetCtView
    from app.workers import wait_for_workers
    from engine.cases.model import Case

    case = Case(id="bench-petct", kind="sarcoma_petct", images=dict(images))
    view = PetCtView()
    view.resize(1400, 1000)
    view.show()
    t0 = time.perf_counter()
    view.show_case(case)
    while view.volumes is None:
        app.processEvents()
        time.sleep(0.002)
    fused = time.perf_counter() - t0
    t1 = time.perf_counter()
    view.show_prediction([prediction])
    while view.overlays is None:
        app.processEvents()
        time.sleep(0.002)
    overlays = time.perf_counter() - t1
    wait_for_workers(600)  # the MIP angles
    mip = time.perf_counter() - t0
    view.heatmap_checkbox.setChecked(True)
    view.set_mode("Fused")
    app.processEvents()
    viewports = [panel.graphics.viewport() for panel in view.planes.values()]
    times: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    for plane in PLANES:
        panel = view.planes[plane]
        count = panel.slice_count
        start = panel.slice_index
        values, used = [], []
        for i in range(steps):
            target = (start + (i + 1) * (1 if (i // count) % 2 == 0 else -1)) % count  # sweep through the tumour
            t, c = time.perf_counter(), time.thread_time()
            panel.set_slice(target)
            for viewport in viewports:
                viewport.repaint()
            values.append((time.perf_counter() - t) * 1e3)
            used.append((time.thread_time() - c) * 1e3)
        times[plane] = values
        cpu[plane] = used
    memory = {"CT (as stored, not copied)": images["CT"].array.nbytes / 2**20,
              "PET on the overlay grid": view.volumes.overlay_nbytes / 2**20,
              "Grad-CAM on the overlay grid": (view.overlays.heat.nbytes if view.overlays.heat is not None else 0)
              / 2**20,
              "MIP frames": sum(f.image.nbytes for f in view.mip.frames if f is not None) / 2**20}
    view.close()
    view.deleteLater()
    app.processEvents()
    return {"times_ms": times, "cpu_ms": cpu, "prepare_s": {"PET onto the overlay grid": fused, "contours + Grad-CAM": overlays,
                                             f"MIP ({len(view.mip.frames)} angles, from open)": mip},
            "memory_mib": memory}
