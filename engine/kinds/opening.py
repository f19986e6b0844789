"""Opening what a user gives (loose images, bundles, folders of bundles) as cases, in the store or not.

Loose images go to the registered kind that claims them most strongly (by their number and names): three
images or node words make a lymph node, one or two images a glioma specimen. The new case is saved as a
bundle in the user data folder, so that everything opened appears in the case browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import engine.kinds  # noqa: F401  (registers the built-in kinds)
from engine.cases.bundle import read_bundle, write_bundle
from engine.cases.kinds import CaseKind, case_kinds
from engine.cases.loading import sort_paths
from engine.cases.model import Case
from engine.io.images import ImageReadError
from engine.paths import user_data_dir


def kind_for_files(paths: Sequence[Path]) -> CaseKind:
    """The kind that claims these loose image files most strongly (registration order breaks ties)."""
    claims = [(kind.claims_files(list(paths)), -i, kind) for i, kind in enumerate(case_kinds())]
    best = max(claims, key=lambda c: c[:2], default=None)
    if best is None or best[0] <= 0:
        names = ", ".join(Path(p).name for p in paths)
        raise ImageReadError(f"{names}: no case kind opens {len(paths)} loose image(s) like these. Open one or two "
                             "specimen images, the three images of one lymph node, or a case bundle.")
    return best[2]


def kind_with_modality(modality: str) -> CaseKind:
    """The kind one of whose images is `modality` (for `--modality`); a clear error listing the codes."""
    for kind in case_kinds():
        if modality in kind.modality_codes:
            return kind
    codes = sorted({c for kind in case_kinds() for c in kind.modality_codes})
    raise ImageReadError(f"No case kind has a {modality!r} image; known modalities: {', '.join(codes)}.")


def case_from_loose_images(paths: Sequence[Path], modality: str | None = None) -> Case:
    """A new case from loose image files; `modality` forces every file to that role of its kind."""
    paths = [Path(p) for p in paths]
    kind = kind_with_modality(modality) if modality else kind_for_files(paths)
    return kind.case_from_files(paths, modality=modality)


def load_case_source(path: str | Path, modality: str | None = None) -> Case:
    """One bundle folder (or its case.json) or one image file -> Case, without touching the store."""
    request = sort_paths([path])
    if request.bundles:
        return read_bundle(request.bundles[0])
    if request.images:
        return case_from_loose_images(request.images, modality)
    raise ImageReadError(f"{path}: a folder of several bundles; open one bundle or image at a time here.")


def save_new_case(case: Case, store, actor: str = "oncolens-gui") -> str:
    """Write a case opened from loose files as a bundle in the user data folder and add it to the store."""
    folder = write_bundle(case, user_data_dir() / "cases" / case.id)
    store.add_case(case, folder, actor=actor)
    return case.id


def open_into_store(paths: list[str | Path], store) -> list[str]:
    """Add what `paths` holds to the store; return the ids of the cases opened (first is shown).

    Images are read and checked before anything is written, so a bad file adds nothing.
    """
    request = sort_paths(paths)
    new_case = case_from_loose_images(request.images) if request.images else None
    bundle_cases = [(read_bundle(folder), folder) for folder in request.bundles]
    opened: list[str] = []
    if new_case is not None:
        opened.append(save_new_case(new_case, store))
    for case, folder in bundle_cases:
        store.add_case(case, folder, actor="oncolens-gui")
        opened.append(case.id)
    for folder in request.bundle_folders:
        opened.extend(store.import_bundles(folder, actor="oncolens-gui"))
    return opened
