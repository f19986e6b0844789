"""Offline review in the main window: the history of stored runs, next / previous case, the compare mode, case
details (patient id and name), the choice for a bundle whose case is already stored, and the study
administrator's view of readers' outlines.

A mixin of `MainWindow` (it uses the window's worker helper, browser, results panel and views). Keys: Alt+Down /
Alt+Up move to the next / previous case of the case list as filtered ([ and ] stay the heat layer's opacity);
F5 runs the models again and keeps the new run beside the stored ones; Ctrl+Shift+C compares two stored runs;
Ctrl+I edits the case details.
"""

from __future__ import annotations

import getpass

from app.views import view_class
from app.widgets.review_dialogs import (
    CaseDetailsDialog,
    CompareDialog,
    ReaderOutlinesDialog,
    ask_bundle_conflict,
)
from engine.cases.model import Case
from engine.data import Prediction
from engine.kinds.opening import CANCEL, bundle_conflicts
from engine.review import ResultRun, prediction_history

NEXT_CASE_KEYS = ("Alt+Down",)
PREVIOUS_CASE_KEYS = ("Alt+Up",)
COMPARE_KEYS = ("Ctrl+Shift+C",)
CASE_DETAILS_KEYS = ("Ctrl+I",)


def case_history(store, case: Case) -> list[ResultRun]:
    """Worker job: every stored run on `case`, newest first, with the arrays its bundle kept."""
    return prediction_history(case, [(s.id, s.summary) for s in store.predictions_for(case.id)])


def prepare_run(case: Case, predictions: list[Prediction]) -> object | None:
    """Worker job: the view's heavy drawing work for a stored run."""
    cls = view_class(case.kind)
    return None if cls is None else cls.prepare(case, predictions)


def _user() -> str:
    try:
        return getpass.getuser() or "oncolens-gui"
    except (KeyError, OSError):
        return "oncolens-gui"


class ReviewMixin:
    """Review actions of `MainWindow`."""

    def _build_review_actions(self, file_menu, view_menu, study_menu) -> None:
        quit_action = file_menu.actions()[-1]
        self.case_details_action = self._action(file_menu, "Case details…", self.edit_case_details,
                                                CASE_DETAILS_KEYS, "Give the open case a patient id and a name")
        file_menu.removeAction(self.case_details_action)
        file_menu.insertAction(quit_action, self.case_details_action)
        file_menu.insertSeparator(quit_action)
        view_menu.addSeparator()
        self.next_case_action = self._action(view_menu, "Next case", lambda: self.step_case(1), NEXT_CASE_KEYS,
                                             "Open the next case of the case list (as filtered)")
        self.previous_case_action = self._action(view_menu, "Previous case", lambda: self.step_case(-1),
                                                 PREVIOUS_CASE_KEYS, "Open the previous case of the case list")
        self.compare_action = self._action(view_menu, "Compare results…", self.compare_results, COMPARE_KEYS,
                                           "Two stored runs of the open case side by side")
        study_menu.addSeparator()
        self.outlines_action = self._action(study_menu, "Reader outlines…", self.reader_outlines_dialog, (),
                                            "Every reader's outline per case beside the model's and the truth")
        self.admin_actions.append(self.outlines_action)
        self.review_dialog = None

    # -- history --------------------------------------------------------------------------------

    def _set_history(self, runs: list[ResultRun], current: int) -> None:
        self.runs = list(runs)
        kind = self.current_case.kind if self.current_case is not None else None
        self.results_panel.set_history([r.label(kind, short=True) for r in self.runs], current if self.runs else -1,
                                       [r.label(kind) for r in self.runs])

    def show_run(self, index: int) -> None:
        """Show stored run `index` of the history exactly as it was computed."""
        case = self.current_case
        if case is None or not 0 <= index < len(self.runs) or self._refuse_while_reading():
            return
        run = self.runs[index]

        def prepared(result) -> None:
            if self.current_case is case:
                self.current_view().use_prepared(result)
                self._show_predictions(list(run.predictions), stored=True)
                self.model_label.setText(run.label(case.kind).split(" · ", 1)[-1])
                self.results_panel.history_combo.setToolTip(run.label(case.kind))

        self._run(prepare_run, case, list(run.predictions), what="Showing a stored run", on_result=prepared)

    # -- navigation -----------------------------------------------------------------------------

    def step_case(self, step: int) -> None:
        """Open the case `step` rows down (or up) the case list as it is filtered."""
        if self._refuse_while_reading():
            return
        ids = self.case_browser.case_ids()
        if not ids:
            self.statusBar().showMessage("The case list is empty.", 4000)
            return
        current = self.current_case.id if self.current_case is not None else self.case_browser.selected_id()
        index = (ids.index(current) + step) if current in ids else (0 if step > 0 else len(ids) - 1)
        if not 0 <= index < len(ids):
            self.statusBar().showMessage("Last case of the list." if step > 0 else "First case of the list.", 4000)
            return
        self.case_browser.select(ids[index], emit=True)

    # -- compare --------------------------------------------------------------------------------

    def compare_results(self) -> None:
        if self.current_case is None or self._refuse_while_reading():
            self.statusBar().showMessage("Open a case first.", 4000)
            return
        if not self.runs:
            self.statusBar().showMessage("This case has no stored result yet: press F5.", 5000)
            return
        self._open_review_dialog(CompareDialog(self.current_case, self.runs, self))

    def _open_review_dialog(self, dialog) -> None:
        if self.review_dialog is not None:
            self.review_dialog.close()
        self.review_dialog = dialog
        dialog.finished.connect(lambda _r: self._review_dialog_closed(dialog))
        dialog.open()

    def _review_dialog_closed(self, dialog) -> None:
        if self.review_dialog is dialog:
            self.review_dialog = None
        dialog.deleteLater()

    # -- case details ---------------------------------------------------------------------------

    def edit_case_details(self) -> None:
        case = self.current_case
        if case is None or self._refuse_while_reading():
            self.statusBar().showMessage("Open a case first.", 4000)
            return
        dialog = CaseDetailsDialog(self.store, case.id, case.patient_id, case.name, _user(), self)
        dialog.saved.connect(lambda case_id: self._case_details_saved(case, dialog))
        self._open_review_dialog(dialog)

    def _case_details_saved(self, case: Case, dialog: CaseDetailsDialog) -> None:
        case.patient_id = dialog.patient_edit.text().strip() or None
        case.name = dialog.name_edit.text().strip()
        if self.current_case is case:
            self.setWindowTitle(f"OncoLens — {case.id}" + (f" · {case.name}" if case.name else ""))
        self.case_browser.refresh(select_id=case.id)
        self.statusBar().showMessage(f"Saved the details of {case.id}.", 5000)

    # -- bundles whose case is already stored ---------------------------------------------------

    def _resolve_conflicts(self, paths, then) -> None:
        """Find bundles whose case is stored from another folder (on a worker), ask about each, then
        `then(choices)`; nothing is opened when every bundle was cancelled."""
        def found(conflicts) -> None:
            choices = {c.case_id: ask_bundle_conflict(self, c) for c in conflicts}
            if conflicts and all(v == CANCEL for v in choices.values()) and len(conflicts) == len(paths):
                self.statusBar().showMessage("Nothing opened.", 5000)
                return
            then(choices)

        self._run(bundle_conflicts, paths, self.store, what="Checking the store for these cases", on_result=found)

    # -- reader outlines ------------------------------------------------------------------------

    def reader_outlines_dialog(self) -> None:
        if self._refuse_while_reading():
            return
        self._with_studies("Reader outlines",
                           lambda studies: self._open_review_dialog(ReaderOutlinesDialog(self.store, studies, self)))
