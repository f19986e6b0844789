"""File ▸ Export case… and Export report…: the open case's exports written by engine.export on a worker.

A mixin of `MainWindow`: it uses the window's worker helper, status bar and error path. What is exported is
what the window shows (the predictions on screen, the heat layer's opacity); the engine draws and writes it.
Each step the engine reports appears beside the busy indicator; a message names the folder written.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox

from engine.cases.export_views import slug
from engine.export import ExportExists, ExportOptions, export_case

CASE_ARTEFACTS = ("overlay", "masks", "contours", "probabilities", "seg")
REPORT_ARTEFACTS = ("report",)


class _Progress(QObject):
    """Carries the engine's progress lines from the worker to the GUI thread (queued signal)."""

    message = Signal(str)


class ExportingMixin:
    """Adds `export_case_dialog`, `export_report_dialog` and `export_to(folder, what)` to the main window."""

    export_message: QMessageBox | None = None
    last_export_folder: str = ""

    def export_case_dialog(self) -> None:
        self._export_dialog(CASE_ARTEFACTS, "Export case")

    def export_report_dialog(self) -> None:
        self._export_dialog(REPORT_ARTEFACTS, "Export report")

    def _export_dialog(self, what: tuple[str, ...], title: str) -> None:
        case = self.current_case
        if case is None:
            self.statusBar().showMessage("Open a case first.", 4000)
            return
        folder = QFileDialog.getExistingDirectory(self, f"{title}: choose a folder (a subfolder named "
                                                        f"{slug(case.id)} is made in it)", self.last_export_folder)
        if not folder:
            return
        self.last_export_folder = folder
        self.export_to(folder, what)

    def export_to(self, folder: str | Path, what: tuple[str, ...], *, force: bool = False) -> None:
        """Export the open case into `<folder>/<case id>/` on a worker; a message says where when done."""
        case = self.current_case
        if case is None:
            self.statusBar().showMessage("Open a case first.", 4000)
            return
        view = self.current_view()
        opacity = view.opacity() if hasattr(view, "opacity") else None
        options = ExportOptions(what=what, force=force, heat_opacity=opacity,
                                frame=getattr(view, "frame_index", None))
        predictions = list(self.predictions) or None  # what is on screen; none yet: the models run in the export
        progress = _Progress(self)
        what_text = "report" if what == REPORT_ARTEFACTS else "case"
        label = f"Exporting {what_text} {case.id}"
        progress.message.connect(lambda text: self.busy_label.setText(f"{label}: {text.split(': ')[-1]}…"))

        def done(files: list[Path]) -> None:
            progress.deleteLater()
            where = files[0].parent if files else Path(folder) / slug(case.id)
            notes = "".join(f"\n• {n}" for n in options.notes)
            text = f"Wrote {len(files)} file(s) for {case.id} into\n{where}{notes}"
            self.statusBar().showMessage(f"Exported {case.id} into {where}", 10000)
            self.export_message = QMessageBox(QMessageBox.Icon.Information, "Export done", text,
                                              QMessageBox.StandardButton.Ok, self)
            self.export_message.setModal(False)
            self.export_message.show()

        def failed(exc: BaseException, tb: str) -> None:
            progress.deleteLater()
            if isinstance(exc, ExportExists) and not force:  # an earlier export: replace only when the user says so
                answer = QMessageBox.question(
                    self, "Export", f"{exc.args[0].split(' exists already')[0]} and maybe more files are there from an "
                                    "earlier export. Replace them?",
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
                if answer == QMessageBox.StandardButton.Yes:
                    self.export_to(folder, what, force=True)
                else:
                    self.statusBar().showMessage("Export cancelled: nothing was replaced.", 6000)
                return
            self.show_error(exc, tb, title=f"Export of {case.id} failed")

        self._run(export_case, case, Path(folder), options, predictions, progress.message.emit, self.service,
                  what=label, on_result=done, on_error=failed)
