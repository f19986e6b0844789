"""Reading mode of the main window: study set-up dialogs, sign-in, the blinded reading session and leaving it.

A mixin of `MainWindow` (it uses the window's docks, actions, views and worker helper), kept apart so the
window module stays about the case workstation. The store is read and written on workers only: the list of
studies, the sign-in (scrypt), and through the `ReadingController`'s queue every answer and move."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMessageBox

from app.reading import OpenedSession, ReadingController, aid_to_prediction, blinded_to_case, open_session
from app.widgets.study_dialogs import AddReaderDialog, NewStudyDialog, StartReadingDialog
from engine.data.words import count_of
from engine.studies import BlindedCase, Study, StudyError, list_studies


class ReadingModeMixin:
    """Reader-study actions of `MainWindow`."""

    def _refuse_while_reading(self) -> bool:
        if self.reading is not None:
            self.statusBar().showMessage("Reading a study: Study ▸ Stop reading first.", 5000)
        return self.reading is not None

    def _open_study_dialog(self, dialog, on_accept) -> None:
        """Window-modal without blocking (as the node dialog): the answer comes through `accepted`."""
        if self.study_dialog is not None:
            self.study_dialog.reject()
        self.study_dialog = dialog
        dialog.accepted.connect(on_accept)
        dialog.finished.connect(lambda _result: self._study_dialog_closed(dialog))
        dialog.open()

    def _study_dialog_closed(self, dialog) -> None:
        if self.study_dialog is dialog:
            self.study_dialog = None
        dialog.deleteLater()

    def _with_studies(self, title: str, then) -> None:
        """List the store's studies on a worker, then `then(studies)`; none: say how to make one."""
        def listed(studies: list[Study]) -> None:
            if not studies:
                QMessageBox.information(self, title, "There is no reader study in this store yet; "
                                                     "an administrator creates one with Study ▸ New study….")
            elif not self._refuse_while_reading():
                then(studies)

        self._run(list_studies, self.store, what="Listing studies", on_result=listed,
                  on_error=lambda exc, tb: self.show_error(exc, tb, title=title))

    def start_reading_dialog(self) -> None:
        if self._refuse_while_reading():
            return

        def ask(studies: list[Study]) -> None:
            dialog = StartReadingDialog(studies, self)
            self._open_study_dialog(dialog, lambda: self.start_reading(*dialog.values()))

        self._with_studies("Start reading", ask)

    def start_reading(self, study_id: str, reader_id: str, pin: str) -> None:
        """Check the PIN off the GUI thread (scrypt is slow on purpose), then enter reading mode."""
        if self._refuse_while_reading():
            return

        def failed(exc: BaseException, tb: str) -> None:
            if isinstance(exc, StudyError):  # wrong reader/PIN (one message for both), washout, unknown study
                QMessageBox.warning(self, "Start reading", str(exc))
                self.statusBar().showMessage("Not signed in.", 6000)
            else:
                self.show_error(exc, tb, title="Start reading failed")

        self._run(open_session, self.store, study_id, reader_id, pin, what="Signing in",
                  on_result=self._reading_opened, on_error=failed)

    def _reading_opened(self, opened: OpenedSession) -> None:
        if self.reading is not None:
            return
        session = opened.session
        self._before_reading = {"browser": self.browser_dock.isVisible(), "results": self.results_dock.isVisible(),
                                "model_label": self.model_label.text()}
        # Blinding: nothing of the case opened before, no truth column, no case list, no model status.
        self.current_case = None
        self._requested_case_id = None
        self.predictions = []
        self.results_panel.set_case(None)
        for dock in (self.browser_dock, self.results_dock):
            dock.hide()
            dock.toggleViewAction().setEnabled(False)
        for action in (*self.open_actions, *self.export_actions, *self.admin_actions, self.predict_action,
                       self.start_reading_action):
            action.setEnabled(False)
        self.stop_reading_action.setEnabled(True)
        self.model_label.setText("Reading session")
        self.reading = ReadingController(opened, self, on_error=lambda exc, title: self.show_error(exc, title=title))
        self.reading.case_shown.connect(self._show_blinded)
        self.reading.arm_finished.connect(self._next_arm)
        self.reading_dock = self._dock("Reading", "readingDock", self.reading.panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.reading_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)  # not closable mid-study
        self.reading_dock.setMinimumWidth(380)
        self.resizeDocks([self.reading_dock], [460], Qt.Orientation.Horizontal)
        drawing_view = self._view_for(opened.case_kind) if opened.contours else None
        if drawing_view is not None and drawing_view.drawing is not None:
            self.reading.attach_drawing(drawing_view.drawing, self)
        self.reading.start()
        self.reading.panel.setFocus()
        self.statusBar().showMessage(f"Reading as {session.display_name}; every answer is saved at once.", 6000)

    def _next_arm(self, opened: OpenedSession) -> None:
        """The reader answered every case of an arm and the next one is due: say so, then start it."""
        if self.reading is None:
            return
        arm = "aided" if opened.session.aided else "unaided"
        what = ("the same cases again, now with the model's output beside the images"
                if opened.session.aided else "the same cases again, in a new order")
        QMessageBox.information(self, "Next session",
                                f"You have answered every case of this session, thank you.\n\nThe {arm} session "
                                f"(round {opened.session.round}) follows now: {what}.")
        self.stop_reading(quiet=True)
        self._reading_opened(opened)
        self.statusBar().showMessage(f"The {arm} session has started.", 8000)

    def _show_blinded(self, blinded: BlindedCase) -> None:
        """The blinded case in the view for its kind; the model output only when the session is aided."""
        title = self.reading.panel.title.text() if self.reading else ""
        self.setWindowTitle(f"OncoLens — reading: {title} — case {blinded.position} of {blinded.total}")
        view = self._view_for(blinded.kind) if not blinded.unavailable else self.placeholder
        if blinded.unavailable or view is self.placeholder:
            self.placeholder.set_message(blinded.unavailable or "This case's kind has no view in this version.")
            self.stack.setCurrentWidget(self.placeholder)
            return
        self.stack.setCurrentWidget(view)
        view.set_editing_allowed(False)
        view.set_model_controls_visible(blinded.aid is not None)  # unaided: no heatmap or method controls
        view.show_case(blinded_to_case(blinded))
        if blinded.aid is not None:
            view.show_prediction([aid_to_prediction(blinded.aid, self.reading.names)])
        else:
            view.set_note("Reading: images only.")  # not the "press F5 to predict" hint
        if blinded.draw_contour:
            view.set_drawing(True, blinded.answer.contour if blinded.answer is not None else None)

    def stop_reading(self, quiet: bool = False) -> None:
        """Leave reading mode (the answers are already saved); the session resumes at the next sign-in.
        `quiet`: no status message (the next arm starts at once)."""
        if self.reading is None:
            return
        self.reading.close()
        self.reading = None
        if self.reading_dock is not None:
            self.removeDockWidget(self.reading_dock)
            self.reading_dock.deleteLater()
            self.reading_dock = None
        for view in self._views.values():
            view.clear()
            view.set_model_controls_visible(True)
            view.set_editing_allowed(True)
        self.placeholder.clear()
        self.stack.setCurrentWidget(self.placeholder)
        self.setWindowTitle("OncoLens")
        self.model_label.setText(self._before_reading.get("model_label", ""))
        for dock, key in ((self.browser_dock, "browser"), (self.results_dock, "results")):
            dock.toggleViewAction().setEnabled(True)
            dock.setVisible(self._before_reading.get(key, True))
        for action in (*self.open_actions, *self.export_actions, *self.admin_actions, self.predict_action,
                       self.start_reading_action):
            action.setEnabled(True)
        self.stop_reading_action.setEnabled(False)
        self.case_browser.table.clearSelection()
        if not quiet:
            self.statusBar().showMessage("Reading stopped; your answers are saved.", 6000)

    def new_study_dialog(self) -> None:
        if self._refuse_while_reading():
            return
        dialog = NewStudyDialog(self.store, self.case_browser.selected_id(), self)
        self._open_study_dialog(dialog, lambda: self.statusBar().showMessage(
            f"Created study {dialog.created.id} ({count_of(len(dialog.created.case_ids), 'case')}).", 8000))

    def add_reader_dialog(self) -> None:
        if self._refuse_while_reading():
            return

        def ask(studies: list[Study]) -> None:
            dialog = AddReaderDialog(self.store, studies, self)
            self._open_study_dialog(dialog, lambda: self.statusBar().showMessage(
                f"Enrolled reader {dialog.added.reader_id} in study {dialog.added.study_id}.", 8000))

        self._with_studies("Add reader", ask)
