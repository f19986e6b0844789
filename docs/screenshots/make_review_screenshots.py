"""Render the offline-review screenshots headless (real shipped models on phantom demo cases).

Usage, from the repository root: python docs/screenshots/make_review_screenshots.py docs/screenshots
[reopened] [compare] [outlines]. Runs in a throw-away ONCOLENS_HOME."""
import os, sys, time, tempfile, shutil
os.environ["QT_QPA_PLATFORM"] = "offscreen"
home = tempfile.mkdtemp(prefix="oncolens_shots_")
os.environ["ONCOLENS_HOME"] = home
os.environ.setdefault("ONCOLENS_BACKEND", "eager")
sys.path.insert(0, os.getcwd())
import numpy as np
from PySide6.QtWidgets import QApplication
app = QApplication([])
from app.main import configure_application, import_demo_cases
configure_application(app)
from app.main_window import MainWindow
from app.workers import wait_for_workers
from engine.service import PredictionService
from engine.store import Store

OUT = sys.argv[1]
which = sys.argv[2:] or ["reopened", "compare", "outlines"]

def pump(cond, timeout=300):
    t = time.time()
    while not cond():
        app.processEvents(); time.sleep(0.02)
        if time.time() - t > timeout:
            raise TimeoutError
    for _ in range(30):
        app.processEvents(); time.sleep(0.02)

store = Store()
import_demo_cases(store)
ids = [c.id for c in store.list_cases()]
print(ids)

def window_on(case_id, service=None):
    w = MainWindow(store, service=service or PredictionService(store))
    w.resize(1600, 1000); w.show()
    pump(lambda: not w._busy_jobs)
    w.case_browser.refresh(select_id=case_id)
    pump(lambda: w.case_browser.selected_id() == case_id or True)
    w.open_case(case_id)
    pump(lambda: w.current_case is not None and w.current_case.id == case_id and w.predictions and not w._busy_jobs and not w._predicting)
    return w

if "reopened" in which:
    glioma = "demo-glioma-05"
    w = window_on(glioma)
    w.predict(); pump(lambda: not w._predicting and not w._busy_jobs and w.results_panel.history_combo.count() == 2)
    w.close(); wait_for_workers(60)
    w2 = window_on(glioma)
    pump(lambda: w2.results_panel.history_combo.count() == 2)
    w2.grab().save(f"{OUT}/reopened_case.png")
    print("reopened", w2.results_panel.state_label.text(), [w2.results_panel.history_combo.itemText(i) for i in range(2)])
    w2.close(); wait_for_workers(60)

if "compare" in which:
    fluoro = "demo-fluoro-02"
    w = window_on(fluoro)
    kind = "fluoro_frame"
    w.service.set_method(kind, "drlse")
    w.predict()
    pump(lambda: not w._predicting and not w._busy_jobs and w.results_panel.history_combo.count() == 2, 120)
    w.compare_results()
    d = w.review_dialog
    d.resize(1600, 1000)
    pump(lambda: d.left.shown == 0 and d.right.shown == 1)
    for side in (d.left, d.right):
        side.view.fit()
    pump(lambda: True)
    d.grab().save(f"{OUT}/compare_mode.png")
    print("compare", d.left.combo.currentText(), "|", d.right.combo.currentText())
    d.accept(); w.close(); wait_for_workers(60)

if "outlines" in which:
    from engine.seg.contours import mask_to_contours
    from engine.studies import AIDED, UNAIDED, ReadingSession, Study, add_reader, create_study, list_studies
    from app.widgets.review_dialogs import ReaderOutlinesDialog
    frames = sorted(i for i in ids if i.startswith("demo-fluoro"))
    service = PredictionService(store)
    for cid in frames:
        if not store.predictions_for(cid):
            service.predict_case(store.load_case(cid))
    cases = [cid for cid in frames if store.load_case(cid).truth is not None]
    pos = [c for c in cases if store.load_case(c).truth.labels.get("tumor") == 1]
    neg = [c for c in cases if store.load_case(c).truth.labels.get("tumor") == 0]
    chosen = tuple(pos[:3] + neg[:1])
    create_study(store, Study(id="outlines-demo", name="Outline demo", task_label="tumor", case_ids=chosen,
                              modalities=("NIR",), arms=(UNAIDED, AIDED), contours=True))
    rng = np.random.default_rng(4)
    for reader, (scale, jitter) in {"dr-a": (1.0, 2.0), "dr-b": (1.25, 6.0)}.items():
        add_reader(store, "outlines-demo", reader, reader, "135790")
        for arm in (UNAIDED, AIDED):
            s = ReadingSession.open(store, "outlines-demo", reader, "135790")
            for _ in range(s.total):
                b = s.current_case()
                truth = store.load_case(b.case_id).truth.masks
                mask = next(iter(truth.values())).astype(bool)
                polys = []
                if mask.any():
                    for c in mask_to_contours(mask):
                        pts = np.asarray(getattr(c, "points", c), float)
                        centre = pts.mean(0)
                        pts = centre + (pts - centre) * (scale if arm == UNAIDED else 1.0 + (scale - 1) / 3)
                        pts = pts[:: max(1, len(pts) // 40)] + rng.normal(0, jitter, (len(pts[:: max(1, len(pts) // 40)]), 2))
                        polys.append([(float(x), float(y)) for y, x in pts])
                s.answer(bool(polys), 5 if polys else 1, contour=polys or None)
                s.next()
            s.finish()
    d = ReaderOutlinesDialog(store, list_studies(store))
    d.resize(1400, 950); d.show()
    pump(lambda: d.outlines is not None)
    d.grab().save(f"{OUT}/reader_outlines.png")
    from PIL import Image  # many flat panels: 256 colours keep the file under 400 KB without visible loss
    Image.open(f"{OUT}/reader_outlines.png").convert("RGB").quantize(256).save(f"{OUT}/reader_outlines.png", optimize=True)
    print("outlines", [p.title for p in d.panels], d.notes_label.text())
    d.close()
wait_for_workers(60)
store.close()
shutil.rmtree(home, ignore_errors=True)
