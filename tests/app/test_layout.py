"""The default layout fits a 1366 x 768 OR-cart screen and a 1920 x 1080 one: for every still case kind, the
window keeps the screen's size, the results panel has no horizontal scrollbar and no text wider than its
label, the case browser's shown columns hold their whole texts (Case and Patient always shown)."""

from __future__ import annotations

import re
import shutil

import pytest
from PySide6.QtGui import QFontMetrics, QTextDocument
from PySide6.QtWidgets import QApplication, QLabel

from app.main import configure_application
from engine.cases.kinds import get_kind
from engine.data import Prediction
from engine.paths import demo_cases_dir
from engine.service import PredictionService
from engine.store import Store

SIZES = [(1366, 768), (1920, 1080)]
STILL_KINDS = {  # kind -> one shipped demo case of it
    "glioma_specimen": "demo-glioma-01",
    "lymph_node": "demo-node-01",
    "fluoro_frame": "demo-fluoro-01",
    "sarcoma_petct": "demo-petct-01",
    "thyroid_usct": "demo-thyroid-01",
}
ITEM_PADDING = 4  # the stylesheet's cell padding (2 px) on each side, with a margin for the focus frame


@pytest.fixture
def styled_app(qapp):
    """The app's own theme, fonts and stylesheet (what a user sees); restored afterwards."""
    before = (qapp.styleSheet(), qapp.font(), qapp.palette())
    configure_application(qapp)
    yield qapp
    qapp.setStyleSheet(before[0])
    qapp.setFont(before[1])
    qapp.setPalette(before[2])


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("layout_demo")
    for case_id in STILL_KINDS.values():
        shutil.copytree(demo_cases_dir() / case_id, folder / case_id)
    return folder


def _parts(model_id: str) -> tuple[str, str]:
    family, variant = re.fullmatch(r"([^\[]+)(?:\[(.*)\])?", model_id).groups()
    return family, variant or ""


def worst_case_predictions(kind_name: str, case) -> list[Prediction]:
    """One prediction per model the kind shows, with the longest call words and three-digit probabilities."""
    kind = get_kind(kind_name)
    family, variant = _parts(kind.primary_model())
    groups = kind.predictor_groups(case)
    variants = ["+".join(g) for g in groups] if len(groups) > 1 else [variant]
    predictions = []
    for v in variants:
        prediction = Prediction(family=family, variant=v, device="CPU (1 threads), ONNX Runtime")
        for task in kind.tasks:
            prediction.set_result(task.name, max(kind.label_names(task.name), key=len), 0.999, 0.55)
        prediction.timings_ms = {"total": 123.0}
        predictions.append(prediction)
    return predictions


def _plain(label: QLabel) -> str:
    document = QTextDocument()
    document.setHtml(label.text())
    return document.toPlainText()


def _text_fits(label: QLabel) -> list[str]:
    """What of the label's text is wider than the label, i.e. would be cut: its words (wrapping labels, at the
    label's font) or its lines (others, rich text laid out at its own font sizes)."""
    width = label.contentsRect().width()
    if label.wordWrap():
        metrics = QFontMetrics(label.font())
        return [word for word in _plain(label).split() if metrics.horizontalAdvance(word) > width]
    document = QTextDocument()
    document.setDefaultFont(label.font())
    document.setDocumentMargin(0)
    document.setHtml(label.text())
    return [_plain(label)] if document.idealWidth() > width else []


@pytest.mark.gui
@pytest.mark.slow  # about 10 s per size: five kinds laid out and measured
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_default_layout_fits_the_screen_for_every_still_kind(qtbot, styled_app, demo_folder, size,
                                                             FakeCascade):
    from app.main_window import MainWindow

    store = Store()
    store.import_bundles(demo_folder)
    window = MainWindow(store, service=PredictionService(store, make_predictor=lambda *a, **k: FakeCascade("FL")),
                        auto_predict=False)
    qtbot.addWidget(window)
    width, height = size
    window.resize(width, height)
    window.show()
    qtbot.waitExposed(window)
    try:
        for kind_name, case_id in STILL_KINDS.items():
            case = store.load_case(case_id)
            window.show_case(case, ({t.name: max(get_kind(kind_name).label_names(t.name), key=len)
                                     for t in get_kind(kind_name).tasks}, "Models: test"))
            window.results_panel.show_predictions(worst_case_predictions(kind_name, case))
            qtbot.wait(30)  # layouts settle
            where = f"{kind_name} at {width}x{height}"
            assert (window.width(), window.height()) == size, f"{where}: the window grew to fit its contents"
            view = window.current_view()
            assert view.minimumSizeHint().width() <= window.stack.width(), f"{where}: the view is clipped"

            panel = window.results_panel
            assert not panel.scroll.horizontalScrollBar().isVisible(), f"{where}: results scroll sideways"
            viewport = panel.scroll.viewport()
            assert panel.scroll.widget().minimumSizeHint().width() <= viewport.width(), f"{where}: results too wide"
            labels = [panel.case_label, panel.headline, *panel.task_labels.values(), *panel.truth_cells.values()]
            labels += [label for cell in panel.cells.values() for label in cell.findChildren(QLabel)]
            labels += [panel.grid.itemAt(i).widget() for i in range(panel.grid.count())
                       if panel.grid.itemAt(i).widget().objectName() == "columnHeader"]
            for label in labels:
                if not label.isVisible() or not label.text():
                    continue
                assert not _text_fits(label), f"{where}: {_plain(label)!r} is cut"
                right = label.mapTo(viewport, label.rect().topRight()).x()
                assert right <= viewport.width(), f"{where}: {_plain(label)!r} runs past the panel"
            assert panel.truth_cells, f"{where}: the Truth column is missing"

            browser = window.case_browser
            table = browser.table
            metrics = QFontMetrics(table.font())
            shown = [c for c in range(table.columnCount()) if not table.isColumnHidden(c)]
            assert {0, 1} <= set(shown), f"{where}: the Case and Patient columns must show"
            if width >= 1920:
                assert shown == [0, 1, 2, 3], f"{where}: room for every browser column"
            assert sum(table.columnWidth(c) for c in shown) <= table.viewport().width()
            header_metrics = QFontMetrics(table.horizontalHeader().font())
            for col in shown:
                title = table.horizontalHeaderItem(col).text()
                assert header_metrics.horizontalAdvance(title) + 2 * ITEM_PADDING <= table.columnWidth(col)
                for row in range(table.rowCount()):
                    text = table.item(row, col).text()
                    assert metrics.horizontalAdvance(text) + 2 * ITEM_PADDING <= table.columnWidth(col), \
                        f"{where}: browser column {title!r} cuts {text!r}"
    finally:
        window.close()
        store.close()
    QApplication.processEvents()
