"""Opening what a user gives (loose images, bundles, folders of bundles) as cases, in the store or not.

Loose images go to the registered kind that claims them most strongly (by their number and names): three
images or node words make a lymph node, one or two images a glioma specimen. The new case is saved as a
bundle in the user data folder, so that everything opened appears in the case browser.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import engine.kinds  # noqa: F401  (registers the built-in kinds)
from engine.cases.bundle import is_bundle, read_bundle, write_bundle
from engine.cases.kinds import CaseKind, case_kinds
from engine.cases.loading import sort_paths
from engine.cases.model import Case, content_sha256
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


def save_or_find_case(case: Case, store, actor: str = "oncolens-gui") -> tuple[str, bool]:
    """(case id, whether it was already stored): images opened again (same content hash, same kind) find the case
    made the first time instead of making a duplicate; otherwise the case is saved as a new one."""
    existing = store.find_case_by_content(content_sha256(case), case.kind)
    if existing is not None:
        return existing, True
    return save_new_case(case, store, actor), False


REPLACE, KEEP_BOTH, CANCEL = "replace", "keep both", "cancel"
CHOICES = (REPLACE, KEEP_BOTH, CANCEL)


@dataclass(frozen=True)
class BundleConflict:
    """A bundle whose case id the store already knows, from another folder."""

    case_id: str
    stored_folder: Path
    new_folder: Path

    def describe(self) -> str:
        return (f"Case {self.case_id} is already in the store, from {self.stored_folder}; the bundle you opened is "
                f"{self.new_folder}.")


class CaseConflictError(ValueError):
    """A bundle's case is already stored from another folder and no choice was made for it."""

    def __init__(self, conflicts: list[BundleConflict]) -> None:
        self.conflicts = conflicts
        super().__init__(" ".join(c.describe() for c in conflicts) + f" Choose one of: {', '.join(CHOICES)}.")


def _bundle_folders(request) -> list[Path]:
    folders = list(request.bundles)
    for parent in request.bundle_folders:
        folders.extend(sorted(p for p in parent.iterdir() if p.is_dir() and is_bundle(p)))
    return folders


def bundle_conflicts(paths: list[str | Path], store) -> list[BundleConflict]:
    """The bundles among `paths` (and one level below folders of bundles) whose case id is stored with another
    bundle folder: opening them must ask whether to replace the stored case, keep both, or cancel."""
    conflicts = []
    for folder in _bundle_folders(sort_paths(paths)):
        case_id = _bundle_case_id(folder)
        known = {c.id: c for c in store.list_cases(text=case_id)}.get(case_id)
        if known is not None and known.bundle_path.resolve() != folder.resolve():
            conflicts.append(BundleConflict(case_id, known.bundle_path, folder))
    return conflicts


def _bundle_case_id(folder: Path) -> str:
    import json

    from engine.cases.bundle import CASE_FILE

    try:
        return str(json.loads((folder / CASE_FILE).read_text(encoding="utf-8")).get("id") or "")
    except (OSError, ValueError, AttributeError):
        return ""  # read_bundle names the problem when the bundle is opened


def keep_both(case: Case, store, actor: str = "oncolens-gui") -> str:
    """Store a bundle's case beside the stored one of the same id: a copy under a new id in the user data folder
    (the opened bundle is left as it is)."""
    stem = case.id[:110]
    taken = {c.id for c in store.list_cases(text=stem)}
    n = 2
    while f"{stem}-copy{n}" in taken:
        n += 1
    new_id = f"{stem}-copy{n}"
    folder = user_data_dir() / "cases" / new_id
    attachments = dict(case.attachments)
    case.id = new_id
    case.attachments = attachments
    try:
        write_bundle(case, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    store.add_case(case, folder, actor=actor)
    return new_id


def open_into_store(paths: list[str | Path], store, choices: Mapping[str, str] | None = None,
                    found: list[str] | None = None) -> list[str]:
    """Add what `paths` holds to the store; return the ids of the cases opened (first is shown).

    Images are read and checked before anything is written, so a bad file adds nothing. Loose images that are
    already stored (same content) open the stored case. A bundle whose case id is stored from another folder
    needs a choice in `choices` ({case id: REPLACE | KEEP_BOTH | CANCEL}); without one nothing is added and
    CaseConflictError lists them (a stored case is never silently re-pointed to another folder). `found`, when
    given, receives the ids of stored cases that loose images opened again.
    """
    choices = dict(choices or {})
    request = sort_paths(paths)
    new_case = case_from_loose_images(request.images) if request.images else None
    conflicts = {c.case_id: c for c in bundle_conflicts(paths, store)}
    undecided = [c for case_id, c in conflicts.items() if choices.get(case_id) not in CHOICES]
    if undecided:
        raise CaseConflictError(undecided)
    bundle_cases = [(read_bundle(folder), folder) for folder in _bundle_folders(request)]
    opened: list[str] = []
    if new_case is not None:
        case_id, known = save_or_find_case(new_case, store)
        opened.append(case_id)
        if known and found is not None:
            found.append(case_id)
    for case, folder in bundle_cases:
        choice = choices.get(case.id) if case.id in conflicts else REPLACE
        if choice == CANCEL:
            continue
        if choice == KEEP_BOTH:
            opened.append(keep_both(case, store))
            continue
        store.add_case(case, folder, actor="oncolens-gui")
        opened.append(case.id)
    return opened
