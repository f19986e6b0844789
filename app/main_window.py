"""The OncoLens main window: case browser, central case view, results, status bar and research-use banner."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSizePolicy,
    QStackedWidget,
    QToolBar,
    QWidget,
)

from app import __version__
from app.exporting import ExportingMixin
from app.opening import OpeningMixin
from app.reading_mode import ReadingModeMixin
from app.review_mode import ReviewMixin, case_history
from app.views import CaseView, PlaceholderView, view_class
from app.widgets.case_browser import CaseBrowser
from app.widgets.model_cards import ModelCardsDialog
from app.widgets.node_assignment import NodeAssignmentDialog
from app.widgets.results_panel import ResultsPanel
from app.workers import error_text, keep_garbage_collection_on_gui_thread, submit
from engine.cases.kinds import CaseKind, Method, find_kind
from engine.cases.model import Case
from engine.data import Prediction
from engine.review import ResultRun
from engine.service import PredictionService, model_label, truth_labels
from engine.settings import Settings, load_settings, save_settings

log = logging.getLogger(__name__)

BANNER_TEXT = "Research use only — not for diagnostic use"
OPACITY_STEP = 0.1


class MainWindow(OpeningMixin, ReadingModeMixin, ExportingMixin, ReviewMixin, QMainWindow):
    """The shell every case kind shares; what is drawn in the middle comes from `app.views.VIEWS`."""

    def __init__(self, store, *, service: PredictionService | None = None, settings: Settings | None = None,
                 auto_predict: bool = True, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        keep_garbage_collection_on_gui_thread()
        self.store = store
        self.service = service or PredictionService(store)
        self._keep_settings = True  # False when the settings file was unreadable: never overwrite it
        if settings is None:
            settings, self._keep_settings = _load_settings_or_default()
        self.settings = settings
        self.auto_predict = auto_predict
        self.current_case: Case | None = None
        self.predictions: list[Prediction] = []
        self.runs: list[ResultRun] = []  # the open case's stored runs, newest first (review_mode)
        self._requested_case_id: str | None = None
        self._predicting: set[str] = set()
        self._busy_jobs: list[str] = []
        self._edit_running = False  # a view's edit is being saved (one at a time, in order)
        self._edit_waiting = None  # the newest edit that arrived meanwhile (it holds the whole state)
        self._docks_sized = False
        self._views: dict[str, CaseView] = {}
        self.node_dialog: NodeAssignmentDialog | None = None
        self.suv_dialog = None  # the open SUV inputs dialog (opening)
        self.study_dialog = None  # the open study dialog (reading_mode)
        self.cards_dialog: ModelCardsDialog | None = None
        self.reading = None  # the ReadingController while a reader reads
        self.reading_dock: QDockWidget | None = None
        self.live_window = None  # app.live.window.LiveWindow, made when first opened
        self._before_reading: dict = {}

        self.setWindowTitle("OncoLens")
        self.setObjectName("mainWindow")
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self._build_banner()
        self._build_central()
        self._build_docks()
        self._build_status_bar()
        self._build_menus()
        self.case_browser.refresh()
        self._run(self.service.status_labels, what="Checking device", on_result=self._status_labels_ready)

    # -- construction -----------------------------------------------------------------------------

    def _build_banner(self) -> None:
        self.banner = QLabel(BANNER_TEXT)
        self.banner.setObjectName("researchBanner")
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        bar = QToolBar("Research use banner")
        bar.setObjectName("bannerBar")
        bar.setMovable(False)
        bar.setFloatable(False)
        bar.toggleViewAction().setVisible(False)  # the banner cannot be hidden
        bar.addWidget(self.banner)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)

    def _build_central(self) -> None:
        self.stack = QStackedWidget()
        self.placeholder = PlaceholderView()
        self.stack.addWidget(self.placeholder)
        self.setCentralWidget(self.stack)

    def _build_docks(self) -> None:
        self.case_browser = CaseBrowser(self.store)
        self.case_browser.case_selected.connect(self.open_case)
        self.case_browser.store_failed.connect(lambda exc: self.show_error(exc, title="Case list"))
        self.case_browser.setMinimumWidth(220)
        self.results_panel = ResultsPanel()
        self.results_panel.setMinimumWidth(300)
        self.results_panel.run_chosen.connect(self.show_run)
        self.browser_dock = self._dock("Cases", "caseDock", self.case_browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.results_dock = self._dock("Results", "resultsDock", self.results_panel, Qt.DockWidgetArea.RightDockWidgetArea)

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.busy_label = QLabel("")
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)  # indeterminate: inference reports no fraction
        self.busy_bar.setFixedWidth(140)
        self.busy_bar.setVisible(False)
        self.device_label = QLabel("Device: …")
        self.device_label.setObjectName("deviceLabel")
        self.model_label = QLabel("Models: …")
        self.model_label.setObjectName("modelLabel")
        status.addPermanentWidget(self.busy_label)
        status.addPermanentWidget(self.busy_bar)
        status.addPermanentWidget(self.device_label)
        status.addPermanentWidget(self.model_label)

    def _action(self, menu, text: str, slot, shortcuts: tuple = (), tip: str = "") -> QAction:
        action = QAction(text, self)
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.open_actions = [
            self._action(file_menu, "Open images…", self.open_images_dialog, ("Ctrl+O",),
                         "Open an FL and/or WL image of one specimen as a new case"),
            self._action(file_menu, "Open node images…", self.open_node_images_dialog, ("Ctrl+L",),
                         "Open the WLI, FI and PCI images of one lymph node as a new case"),
            self._action(file_menu, "Open case bundle…", self.open_bundle_dialog, ("Ctrl+Shift+O",),
                         "Open a case bundle folder, or a folder of bundles"),
        ]
        file_menu.addSeparator()
        self.export_actions = [
            self._action(file_menu, "Export case…", self.export_case_dialog, ("Ctrl+E",),
                         "Write the open case's overlays, masks, contours, probabilities and segmentations"),
            self._action(file_menu, "Export report…", self.export_report_dialog, ("Ctrl+Shift+E",),
                         "Write the open case's one-page report (PDF, PNG, HTML)"),
        ]
        file_menu.addSeparator()
        self._action(file_menu, "Quit", self.close, ("Ctrl+Q",))
        analysis = bar.addMenu("&Analysis")
        self.predict_action = self._action(analysis, "Predict", self.predict, ("F5", "Ctrl+R"),
                                           "Run the models on the open case")
        analysis.addSeparator()
        self._action(analysis, "Toggle heatmap", self.toggle_heatmap, ("H",))
        self._action(analysis, "Heatmap opacity +", lambda: self.step_opacity(OPACITY_STEP), ("]",))
        self._action(analysis, "Heatmap opacity −", lambda: self.step_opacity(-OPACITY_STEP), ("[",))
        live = bar.addMenu("&Live")
        self.live_action = self._action(live, "Live video…", self.open_live, ("Ctrl+Shift+L",),
                                        "Camera, video file, GenICam camera or phantom with the tumor outline live")
        view = bar.addMenu("&View")
        self._action(view, "Fit images", lambda: self.current_view().fit(), ("F",))
        self._action(view, "Reset window/level", lambda: self.current_view().reset_levels(), ("W",))
        view.addSeparator()
        view.addAction(self.browser_dock.toggleViewAction())
        view.addAction(self.results_dock.toggleViewAction())
        study = bar.addMenu("&Study")
        self.start_reading_action = self._action(study, "Start reading…", self.start_reading_dialog, (),
                                                 "Sign in with your reader id and PIN and read a study's cases")
        self.stop_reading_action = self._action(study, "Stop reading", self.stop_reading, (),
                                                "Leave the reading session; every answer is already saved")
        self.stop_reading_action.setEnabled(False)
        study.addSeparator()
        self.admin_actions = [
            self._action(study, "New study…", self.new_study_dialog, (), "Create a reader study from stored cases"),
            self._action(study, "Add reader…", self.add_reader_dialog, (), "Enrol a reader in a study with a PIN"),
        ]
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "Model cards…", self.show_model_cards)
        self._action(help_menu, "About OncoLens", self.show_about)
        self._build_review_actions(file_menu, view, study)

    # -- opening cases ----------------------------------------------------------------------------

    def open_case(self, case_id: str) -> None:
        """Load a stored case off the GUI thread and show it with its newest stored run, exactly as computed;
        the models run only for a case with no stored result (F5 runs them again explicitly)."""
        if self._refuse_while_reading():
            return
        self._requested_case_id = case_id
        self.statusBar().showMessage(f"Opening {case_id}…")
        self._run(_load_case, self.store, self.service, case_id, what=f"Opening {case_id}",
                  on_result=self._case_loaded)

    def _case_loaded(self, loaded: LoadedCase) -> None:
        if loaded.case.id != self._requested_case_id:
            return  # the user picked another case meanwhile
        self._view_for(loaded.case.kind).use_prepared(loaded.prepared)
        self.show_case(loaded.case, (loaded.truth, loaded.cards_label))
        self._set_history(loaded.runs, 0)
        if loaded.runs:
            self._show_predictions(list(loaded.runs[0].predictions), stored=True)
        elif self.auto_predict:
            self.predict()
        if self.pending_note:
            self.statusBar().showMessage(self.pending_note, 10000)
            self.pending_note = None

    def show_case(self, case: Case, texts: tuple[dict[str, str] | None, str] | None = None) -> None:
        """Put `case` in the central view for its kind (the placeholder when the kind has none). `texts`: its
        truth in words and its kind's models (both read from model cards), else they are read on a worker."""
        self.current_case = case
        self.predictions = []
        self.runs = []
        self.setWindowTitle(f"OncoLens — {case.id}" + (f" · {case.name}" if case.name else ""))
        view = self._view_for(case.kind)
        self.stack.setCurrentWidget(view)
        view.show_case(case)
        truth, cards = texts if texts is not None else (None, "Models: …")
        self.results_panel.set_case(case.id, truth, case.kind)
        self.model_label.setText(cards)  # this kind's models until a prediction
        if texts is None:
            submit(case_texts, self.service, case, description=f"Reading the model cards for {case.id}",
                   context=self, on_result=lambda texts: self._case_texts_ready(case, texts))
        self.statusBar().showMessage(f"Opened {case.id}", 4000)

    def _case_texts_ready(self, case: Case, texts: tuple[dict[str, str] | None, str]) -> None:
        if self.current_case is not case:
            return
        truth, cards = texts
        self.results_panel.set_truth(truth)
        if not self.predictions:
            self.model_label.setText(cards)

    def _view_for(self, kind: str) -> CaseView:
        cls = view_class(kind)
        if cls is None:
            return self.placeholder
        if kind not in self._views:
            view = cls()
            view.set_opacity(self.settings.heatmap_opacity)
            view.opacity_changed.connect(self._opacity_changed)
            view.case_edited.connect(self.save_case_edit)
            view.predict_requested.connect(self.predict)
            self.stack.addWidget(view)
            self._views[kind] = view
            kind_info = find_kind(kind)
            if kind_info is not None:  # the kind's model choices (installed nets): read from disk on a worker
                self._run(kind_methods, kind_info, self.service, what="Listing methods",
                          on_result=lambda methods, k=kind, v=view: self._methods_ready(k, v, methods))
        return self._views[kind]

    def _methods_ready(self, kind: str, view: CaseView, methods: tuple[list[Method], str | None]) -> None:
        """Where the user picks the model, keep the view and the service agreed."""
        choices, current = methods
        if choices:
            view.set_methods(choices, current)
            view.method_changed.connect(lambda method: self._method_changed(kind, view, method))

    def _method_changed(self, kind: str, view: CaseView, method: str) -> None:
        """Another method chosen in a view: the service uses it for the kind from now on, and the open case
        (shown in that view) runs again."""
        self.service.set_method(kind, method)
        if self.current_case is not None and self.current_view() is view and self.auto_predict:
            self.predict()

    def current_view(self) -> CaseView:
        return self.stack.currentWidget()

    # -- prediction -------------------------------------------------------------------------------

    def predict(self) -> None:
        """Run the models on the open case on a worker; the GUI stays responsive meanwhile. The new run is kept
        beside the stored ones and added to the history."""
        case = self.current_case
        if self._refuse_while_reading():
            return
        if case is None:
            self.statusBar().showMessage("Open a case first.", 4000)
            return
        if case.id in self._predicting:
            self.statusBar().showMessage(f"Already predicting {case.id}…", 4000)
            return
        self._predicting.add(case.id)
        self.results_panel.set_busy("Running models…")

        def done(result: tuple[list[Prediction], object | None, list[ResultRun]]) -> None:
            predictions, prepared, runs = result
            self._predicting.discard(case.id)
            self.case_browser.refresh()
            if self.current_case is not None and self.current_case.id == case.id:
                self.current_view().use_prepared(prepared)
                self._show_predictions(predictions)
                self._set_history(runs, 0)

        def failed(exc: BaseException, tb: str) -> None:
            self._predicting.discard(case.id)
            self.results_panel.set_busy("Prediction failed.")
            self.show_error(exc, tb, title=f"Prediction failed for {case.id}")

        self._run(_predict_and_prepare, self.service, case, what=f"Predicting {case.id}", on_result=done,
                  on_error=failed)

    def _show_predictions(self, predictions: list[Prediction], stored: bool = False) -> None:
        if self.reading is not None:
            return  # a result that arrives during reading is not shown (blinding)
        self.predictions = predictions
        self.current_view().show_prediction(predictions)
        self.results_panel.show_predictions(predictions, stored=stored)
        if not stored:
            self.model_label.setText("   ".join(model_label(p) for p in predictions))
            self.statusBar().showMessage(f"Prediction done for {self.current_case.id}", 5000)

    # -- edits made in a view ---------------------------------------------------------------------

    def save_case_edit(self, save) -> None:
        """Run a view's `save(store) -> message` on a worker; edits that arrive meanwhile wait, and only the
        newest of them runs next (each carries the view's whole state, e.g. both nodule boxes)."""
        if self.reading is not None:
            return  # a reader never changes a case
        if self._edit_running:
            self._edit_waiting = save
            return
        self._edit_running = True

        def next_edit() -> None:
            self._edit_running = False
            waiting, self._edit_waiting = self._edit_waiting, None
            if waiting is not None:
                self.save_case_edit(waiting)

        def saved(message: str) -> None:
            self.statusBar().showMessage(message, 5000)
            self.case_browser.refresh()
            next_edit()

        def failed(exc: BaseException, tb: str) -> None:
            self.show_error(exc, tb, title="Change not saved")
            next_edit()

        self._run(save, self.store, what="Saving the change", on_result=saved, on_error=failed)

    @property
    def saving_edits(self) -> bool:
        return self._edit_running or self._edit_waiting is not None

    # -- live video -------------------------------------------------------------------------------

    def open_live(self) -> None:
        """The live view, in its own window (a second screen in the operating room); saved frames and recordings
        appear in the case browser."""
        if self._refuse_while_reading():
            return
        if self.live_window is None:
            from app.live.window import LiveWindow

            self.live_window = LiveWindow(self.store, parent=self)
            self.live_window.case_saved.connect(self._live_case_saved)
            self.live_window.resize(1600, 1000)
        self.live_window.show()
        self.live_window.raise_()
        self.live_window.activateWindow()

    def _live_case_saved(self, case_id: str) -> None:
        self.case_browser.refresh()
        self.statusBar().showMessage(f"Live: case {case_id} added", 8000)

    # -- view controls ----------------------------------------------------------------------------

    def toggle_heatmap(self) -> None:
        view = self.current_view()
        view.set_heatmap_visible(not view.heatmap_visible())

    def step_opacity(self, delta: float) -> None:
        view = self.current_view()
        view.set_opacity(view.opacity() + delta)

    def _opacity_changed(self, opacity: float) -> None:
        self.settings.heatmap_opacity = round(opacity, 2)

    # -- workers, errors, status ------------------------------------------------------------------

    def _run(self, fn, *args, what: str, on_result, on_error=None) -> None:
        """Submit to the worker pool with the busy indicator on while it runs; errors reach the user."""
        self._busy_jobs.append(what)
        self._update_busy()
        job = {"running": True}

        def finish() -> None:  # once, even when a failing result handler leads to the error path
            if job["running"]:
                job["running"] = False
                self._busy_jobs.remove(what)
                self._update_busy()

        def result(value) -> None:
            finish()
            on_result(value)

        def error(exc: BaseException, tb: str) -> None:
            finish()
            (on_error or (lambda e, t: self.show_error(e, t, title=f"{what} failed")))(exc, tb)

        submit(fn, *args, description=what, on_result=result, on_error=error, context=self)

    def _update_busy(self) -> None:
        self.busy_bar.setVisible(bool(self._busy_jobs))
        self.busy_label.setText(f"{self._busy_jobs[-1]}…" if self._busy_jobs else "")

    def _status_labels_ready(self, labels: tuple[str, str]) -> None:
        device, models = labels
        self.device_label.setText(f"Device: {device}")
        if self.reading is not None:
            self._before_reading["model_label"] = models
        elif not self.predictions:
            self.model_label.setText(models)

    def show_error(self, exc: BaseException, tb: str = "", title: str = "OncoLens") -> None:
        """Every error the user should know about ends here: status bar plus a message box."""
        message = error_text(exc)
        if tb:
            log.error("%s: %s\n%s", title, message, tb)
        self.statusBar().showMessage(f"Error: {message.splitlines()[0]}", 15000)
        QMessageBox.critical(self, title, message)

    def show_model_cards(self) -> None:
        """Help ▸ Model cards, without blocking (the cards are read on a worker)."""
        if self.cards_dialog is None:
            self.cards_dialog = ModelCardsDialog(self)
            self.cards_dialog.finished.connect(lambda _result: setattr(self, "cards_dialog", None))
            self.cards_dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.cards_dialog.open()

    def show_about(self) -> None:
        QMessageBox.about(
            self, "About OncoLens",
            f"<h3>OncoLens {__version__}</h3><p><b>{BANNER_TEXT}.</b></p>"
            "<p>Shows what published deep-learning methods see in intraoperative and preoperative images. "
            "The models run locally; results are stored with the case.</p>"
            "<p>Help &gt; Model cards lists each model's data, training and evaluation.</p>",
        )

    # -- show, close ------------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._docks_sized:  # docks take their share only once the window has its size
            self._docks_sized = True
            self.resizeDocks([self.browser_dock, self.results_dock], list(dock_widths(self.width())),
                             Qt.Orientation.Horizontal)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.stop_reading()
        if self.live_window is not None:
            self.live_window.close()  # stops the stream; a recording is finished and saved on a worker
        if self._keep_settings:
            submit(save_settings, self.settings, description="Saving settings",
                   on_error=lambda exc, _tb: log.warning("Settings not saved: %s", exc))
        super().closeEvent(event)


def dock_widths(window_width: int) -> tuple[int, int]:
    """(case browser, results) widths for a window this wide: on a 1366-pixel screen the browser shows case
    and patient ids and the results three columns, the images keep about 680 pixels; from about 1800 pixels
    the browser shows all its columns."""
    if window_width >= 1800:
        return 500, 460
    return max(220, round(0.23 * window_width)), max(300, round(0.27 * window_width))


def _prepare(case: Case, predictions: list[Prediction]) -> object | None:
    cls = view_class(case.kind)
    return None if cls is None else cls.prepare(case, predictions)


@dataclass
class LoadedCase:
    """A stored case as a worker read it: images, stored results, its view's prepared drawing and its texts."""

    case: Case
    runs: list[ResultRun]  # newest first; the first is shown
    prepared: object | None
    truth: dict[str, str] | None
    cards_label: str


def case_texts(service: PredictionService, case: Case) -> tuple[dict[str, str] | None, str]:
    """Worker job: the case's truth in words and its kind's installed models (both read model cards)."""
    return truth_labels(case), service.cards_label(case.kind)


def kind_methods(kind: CaseKind, service: PredictionService) -> tuple[list[Method], str | None]:
    """Worker job: the kind's model choices and the one in use (lists the installed models)."""
    methods = kind.methods()
    return methods, (service.method(kind.name) if methods else None)


def _load_case(store, service: PredictionService, case_id: str) -> LoadedCase:
    """Worker job: the case's images, its stored predictions, what its view prepares from them, its texts."""
    case = store.load_case(case_id)
    runs = case_history(store, case)
    shown = list(runs[0].predictions) if runs else []
    return LoadedCase(case, runs, _prepare(case, shown), *case_texts(service, case))


def _predict_and_prepare(service, case: Case) -> tuple[list[Prediction], object | None, list[ResultRun]]:
    """Worker job: run the models (kept beside the stored runs), the view's heavy drawing work, the new history."""
    predictions = service.predict_case(case, keep_all=True)
    runs = case_history(service.store, case) if service.store is not None else []
    return predictions, _prepare(case, predictions), runs


def _load_settings_or_default() -> tuple[Settings, bool]:
    """(settings, whether they may be saved back): an unreadable file is left for the user to fix."""
    try:
        return load_settings(), True
    except ValueError as exc:
        log.warning("%s Using default settings for this session.", exc)
        return Settings(), False
