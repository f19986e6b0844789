"""What a user opens (image files, case bundles, folders of bundles), sorted by how each is opened.

Which case kind loose image files make is decided by the kinds themselves (`engine.kinds.opening`); other
sources a kind opens (a DICOM folder, a zip, a NIfTI file: `CaseKind.opens_path`) go with the loose images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.cases.bundle import is_bundle
from engine.cases.kinds import case_kinds
from engine.io.images import IMAGE_SUFFIXES, ImageReadError
from engine.io.us_ct import DICOM_SUFFIXES, is_dicom_path


@dataclass
class OpenRequest:
    """What a list of dropped or chosen paths holds, sorted by how each is opened."""

    bundles: list[Path] = field(default_factory=list)
    bundle_folders: list[Path] = field(default_factory=list)  # folders holding bundles one level down
    images: list[Path] = field(default_factory=list)  # loose image files and other sources a kind opens


def kind_opens(path: Path) -> bool:
    """Some registered kind opens this non-image path (a DICOM folder, a zip, a NIfTI file...)."""
    return any(kind.opens_path(path) for kind in case_kinds())


def sort_paths(paths: list[str | Path]) -> OpenRequest:
    """Classify paths; anything OncoLens cannot open is an error naming it and what would work."""
    request = OpenRequest()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ImageReadError(f"{path}: file or folder not found.")
        if path.is_dir():
            if is_bundle(path):
                request.bundles.append(path)
            elif any(is_bundle(child) for child in path.iterdir() if child.is_dir()):
                request.bundle_folders.append(path)
            elif kind_opens(path) or is_dicom_path(path):
                request.images.append(path)
            else:
                raise ImageReadError(
                    f"{path}: folder is neither a case bundle (no case.json), a folder of case bundles, nor a folder any "
                "case kind opens (e.g. DICOM)."
                )
        elif path.name == "case.json":
            request.bundles.append(path.parent)
        elif path.suffix.lower() in IMAGE_SUFFIXES + DICOM_SUFFIXES or kind_opens(path):
            request.images.append(path)
        else:
            raise ImageReadError(
                f"{path}: cannot open '{path.suffix or path.name}' files. "
                f"Open images ({', '.join(IMAGE_SUFFIXES + DICOM_SUFFIXES)}) or a case bundle folder."
            )
    return request
