"""Opening what the user gives the main window: image files, bundle folders, the three images of a lymph node
(with the assignment dialog when their names do not say which is which), a PET-CT DICOM study (asking for the
patient's weight or dose when its PET header lacks them), from menus or dropped on the window.

A mixin of `MainWindow` (it uses the window's worker helper, browser and settings). Everything that touches
the disk (telling files from folders, reading images, writing bundles, the store) runs on a worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QFileDialog

from app.widgets.node_assignment import NodeAssignmentDialog
from app.widgets.suv_inputs_dialog import SUVInputsDialog
from engine.io.images import IMAGE_SUFFIXES
from engine.io.suv import SUVInputMissing
from engine.kinds.lymph_node import (
    NodeFile,
    describe_node_files,
    looks_like_node_images,
    node_mapping_from_names,
    open_node_into_store,
)
from engine.kinds.opening import open_into_store
from engine.kinds.sarcoma_petct import open_dicom_into_store


@dataclass
class Opened:
    """What a worker made of the paths the user gave: cases in the store, or node images to assign first."""

    folder: str  # where the next file dialog starts
    case_ids: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)  # stored cases that loose images opened again
    new_from_files: bool = False
    node_files: list[NodeFile] | None = None


def _unclear_node_images(paths: list[Path]) -> bool:
    """Only image files, that look like one lymph node's images, whose names do not say which mode each is."""
    images = all(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in paths)
    return images and looks_like_node_images(paths) and node_mapping_from_names(paths) is None


def open_paths_job(paths: list[Path], store, choices: dict[str, str] | None = None) -> Opened:
    """Worker job: add what `paths` holds to the store, unless they are node images that need assigning.
    `choices`: what to do with each bundle whose case is already stored from another folder."""
    folder = str(paths[0].parent if paths[0].is_file() else paths[0])
    if _unclear_node_images(paths):  # e.g. three dropped images whose names do not say WLI / FI / PCI
        return Opened(folder, node_files=describe_node_files(paths))
    found: list[str] = []
    ids = open_into_store(paths, store, choices, found)
    loose = any(p.is_file() and p.name != "case.json" for p in paths)
    return Opened(folder, case_ids=ids, found=found, new_from_files=loose and not found)


class OpeningMixin:
    """File menu, drag and drop and the node-assignment dialog of `MainWindow`."""

    pending_note: str | None = None  # said in the status bar once the opened case is on screen

    def open_paths(self, paths: list[str | Path]) -> None:
        """Open image files, bundle folders or folders of bundles (dialogs and drag-and-drop end here)."""
        paths = [Path(p) for p in paths]
        if not paths or self._refuse_while_reading():
            return
        names = ", ".join(p.name for p in paths[:3]) + ("…" if len(paths) > 3 else "")

        def failed(exc: BaseException, tb: str) -> None:
            if isinstance(exc, SUVInputMissing) and len(paths) == 1:
                self._ask_suv_inputs(paths[0], exc)
            else:
                self.show_error(exc, tb, title=f"Opening {names} failed")

        self._resolve_conflicts(paths, lambda choices: self._run(open_paths_job, paths, self.store, choices,
                                                                 what=f"Opening {names}", on_result=self._opened,
                                                                 on_error=failed))

    def _ask_suv_inputs(self, path: Path, exc: SUVInputMissing) -> None:
        """A PET header without weight or dose: ask for them (window-modal, without blocking), then open again."""
        if self.suv_dialog is not None:
            self.suv_dialog.reject()
        dialog = SUVInputsDialog(str(exc), exc.missing, self)
        self.suv_dialog = dialog
        dialog.accepted.connect(lambda: self.open_dicom_with_suv_inputs(path, dialog.values()))
        dialog.finished.connect(lambda _result: self._suv_dialog_closed(dialog))
        dialog.open()

    def _suv_dialog_closed(self, dialog: SUVInputsDialog) -> None:
        if self.suv_dialog is dialog:
            self.suv_dialog = None
        dialog.deleteLater()

    def open_dicom_with_suv_inputs(self, path: str | Path, entered: dict[str, float]) -> None:
        """Open the PET-CT study in `path` with the weight / dose the user entered."""
        path = Path(path)
        self._run(open_dicom_into_store, path, self.store, entered, what=f"Opening {path.name}",
                  on_result=self._paths_opened)

    def _opened(self, opened: Opened) -> None:
        self.settings.last_open_dir = opened.folder
        if opened.node_files is not None:
            self._ask_node_assignment(opened.node_files)
        else:
            if opened.found:
                self.pending_note = (f"These images are already stored as case {opened.found[0]}: opened it "
                                     "(no duplicate made).")
            elif opened.new_from_files and opened.case_ids:
                self.pending_note = ("New case from files: File ▸ Case details… (Ctrl+I) gives it a patient id and "
                                     "a name.")
            self._paths_opened(opened.case_ids)

    def _paths_opened(self, case_ids: list[str]) -> None:
        if not case_ids:
            self.statusBar().showMessage("No cases found in what was opened.", 6000)
            return
        self.case_browser.refresh(select_id=case_ids[0])
        self.open_case(case_ids[0])

    def _image_files_dialog(self, title: str) -> list[str]:
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(self, title, self.settings.last_open_dir,
                                                f"Images ({patterns});;All files (*)")
        return files

    def open_images_dialog(self) -> None:
        self.open_paths(self._image_files_dialog("Open specimen images (FL and/or WL)"))

    def open_node_images_dialog(self) -> None:
        files = self._image_files_dialog("Open the images of one lymph node (WLI, FI, PCI)")
        if files:
            self.settings.last_open_dir = str(Path(files[0]).parent)
            self.assign_node_files(files)

    def assign_node_files(self, paths: list[str | Path]) -> None:
        """Read the files off the GUI thread, then let the user confirm which is WLI, FI and PCI."""
        paths = [Path(p) for p in paths]
        self._run(describe_node_files, paths, what="Reading node images", on_result=self._ask_node_assignment)

    def _ask_node_assignment(self, files: list[NodeFile]) -> None:
        if self.node_dialog is not None:
            self.node_dialog.reject()
        dialog = NodeAssignmentDialog(files, self)
        dialog.accepted.connect(lambda: self.open_node_images(dialog.mapping()))
        dialog.finished.connect(lambda _result: self._node_dialog_closed(dialog))
        self.node_dialog = dialog
        dialog.open()  # window-modal, without blocking: the answer comes through `accepted`

    def _node_dialog_closed(self, dialog: NodeAssignmentDialog) -> None:
        if self.node_dialog is dialog:
            self.node_dialog = None
        dialog.deleteLater()

    def open_node_images(self, mapping: dict[str, Path]) -> None:
        """Make a lymph-node case of {'WLI' | 'FI' | 'PCI': file}, add it to the store and open it."""
        names = ", ".join(f"{m} {Path(p).name}" for m, p in mapping.items())
        self._run(open_node_into_store, mapping, self.store, what=f"Opening {names}", on_result=self._paths_opened)

    def open_bundle_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open case bundle or folder of bundles",
                                                  self.settings.last_open_dir)
        if folder:
            self.open_paths([folder])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and all(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)
