"""The case-kind registry: one `CaseKind` per kind of case, registered by the kind's own module.

A kind says what its cases hold (modality roles), how those group into predictor inputs, which predictor
reads them, which tasks it answers and how to name them, whether readers may outline, and which view shows
it. The service, the CLI, the case browser, the results panel and the reader studies iterate this registry;
nothing outside a kind's module branches on a kind's name.

This module is a leaf of the cases layer: it imports no kind. The built-in kinds register when
`engine.kinds` is imported (the service, the CLI and the app do that); a site or a test registers its own
with `register_kind`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.data import YX, YXC, ModalityImage, PredictionSummary
from engine.metrics.image_quality import Finding, standard_findings

if TYPE_CHECKING:
    from engine.cases.model import Case
    from engine.predict.base import Predictor


class KindError(ValueError):
    """A case kind is unknown, registered twice, or cannot read the case it was given."""


@dataclass(frozen=True)
class ModalityRole:
    """One image a case of the kind may hold: its code (the key in `Case.images`), title and accepted axes."""

    code: str
    title: str
    axes: tuple[str, ...] = (YX,)
    units: str = ""

    @property
    def colour(self) -> bool:
        return self.axes == (YXC,)


@dataclass(frozen=True)
class TaskInfo:
    """A question the kind's models answer: `name` is the key in predictions and truth labels."""

    name: str
    title: str
    question: str = ""
    labels: tuple[str, str] = ("negative", "positive")  # fallback when no installed card names them


@dataclass(frozen=True)
class Method:
    """One choice of model for kinds whose user picks the method (e.g. a segmentation net or DRLSE)."""

    id: str
    label: str


class CaseKind:
    """Base of every kind descriptor; a kind module subclasses it, fills the attributes and registers one
    instance. Methods have the behaviour most kinds want; a kind overrides what differs."""

    name: str = ""
    title: str = ""
    roles: tuple[ModalityRole, ...] = ()
    tasks: tuple[TaskInfo, ...] = ()
    outline: bool = False  # readers may outline the structure on the image (one plane, one modality shown)
    view: str = ""  # key of the view the app registered for it ("" = the kind's own name)
    group_each_modality: bool = False  # True: one predictor per modality present; False: one for all present

    # -- what a case holds ------------------------------------------------------------------------

    @property
    def modality_codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.roles)

    def role(self, code: str) -> ModalityRole:
        for role in self.roles:
            if role.code == code:
                return role
        raise KindError(f"'{self.name}' cases have no {code} image; their images are "
                        f"{', '.join(self.modality_codes)}.")

    def task(self, name: str) -> TaskInfo:
        for task in self.tasks:
            if task.name == name:
                return task
        return TaskInfo(name, name.replace("_", " ").title())

    def predictor_groups(self, case: Case) -> list[tuple[str, ...]]:
        """The modality sets the kind's predictors read for `case`, in display order (primary first)."""
        present = [code for code in self.modality_codes if code in case.images]
        if not present:
            raise KindError(
                f"Case {case.id} has no image the models can read: it has "
                f"{', '.join(case.images) or 'none'}, '{self.name}' models need "
                f"{' or '.join(self.modality_codes)}.")
        return [(code,) for code in present] if self.group_each_modality else [tuple(present)]

    # -- models ------------------------------------------------------------------------------------

    def methods(self) -> list[Method]:
        """Choices of model the user may pick (first = default); empty when the kind has no choice."""
        return []

    def default_method(self) -> str | None:
        choices = self.methods()
        return choices[0].id if choices else None

    def make_predictor(self, modalities: tuple[str, ...], method: str | None = None) -> Predictor:
        """Build (load and verify) the predictor for one modality set, with the chosen method if any."""
        raise KindError(f"OncoLens has no predictor for '{self.name}' cases.")

    def assess(self, images: Mapping[str, ModalityImage]) -> list[Finding]:
        """Input-quality findings for the images one predictor will read: blocking ones stop the call
        ("input not assessable"), the others travel with the prediction as warnings. Every kind gets the
        standard checks (size, flat, saturated, noise only); a kind adds what it knows (e.g. where the object is)."""
        return [finding for image in images.values() for finding in standard_findings(image)]

    def primary_model(self) -> str:
        """The model id compared with readers and shown in aided reading by default."""
        raise KindError(f"'{self.name}' cases have no primary model.")

    def label_names(self, task: str) -> tuple[str, str]:
        """(negative, positive) words for a task's truth labels and calls; from the installed card when any."""
        return self.task(task).labels

    def model_title(self, summary: PredictionSummary) -> tuple[str, str]:
        """(title, small note) naming a prediction's model in tables and column headers."""
        return summary.family, summary.variant

    def prediction_rank(self, summary: PredictionSummary) -> int:
        """Sort key for showing several predictions of one case (the primary model first)."""
        return 0

    def cards_label(self) -> str:
        """Status-bar text naming the kind's installed models and their weights (reads cards, no nets)."""
        return ""

    # -- demo data and loose files ------------------------------------------------------------------

    def write_demo_cases(self, folder: Path) -> list[Path]:
        """Write the kind's bundled demo cases as bundles into `folder`; return their folders."""
        return []

    def opens_path(self, path: Path) -> bool:
        """True for a path that is not an image file or a bundle but that this kind opens as (part of) a case:
        e.g. a DICOM folder, a zip or a NIfTI file. Such paths are then offered to `claims_files` like images."""
        return False

    def claims_files(self, paths: Sequence[Path]) -> int:
        """How sure the kind is, from their number and names, that these loose image files are one of its
        cases: 0 never, higher wins. The kind with the highest claim opens them with `case_from_files`."""
        return 0

    def case_from_files(self, paths: Sequence[Path], modality: str | None = None) -> Case:
        """A new case from loose image files (`modality` forces every file to that role)."""
        raise KindError(f"'{self.name}' cases cannot be opened from loose image files.")

    def export_results(self, case: Case, predictions: Sequence, folder: Path) -> list[Path]:
        """Write the kind's exports of `predictions` on `case` (e.g. DICOM SEG, NIfTI, measures CSV) into `folder`;
        return the files. Kinds without exports refuse."""
        raise KindError(f"'{self.name}' cases have no segmentation exports.")

    def __repr__(self) -> str:
        return f"<CaseKind {self.name}>"


_KINDS: dict[str, CaseKind] = {}


def register_kind(kind: CaseKind) -> CaseKind:
    """Add a kind to the registry (once per name); returns it, so a module can write `KIND = register_kind(...)`."""
    if not kind.name or not kind.title or not kind.roles:
        raise KindError(f"A case kind needs a name, a title and at least one modality role: {kind!r}.")
    current = _KINDS.get(kind.name)
    if current is not None and type(current) is not type(kind):
        raise KindError(f"Case kind '{kind.name}' is registered twice ({type(current).__name__} and "
                        f"{type(kind).__name__}).")
    _KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    """Remove a kind (tests that register a toy kind call this when done)."""
    _KINDS.pop(name, None)


def get_kind(name: str) -> CaseKind:
    try:
        return _KINDS[name]
    except KeyError:
        known = ", ".join(_KINDS) or "none (import engine.kinds to register the built-in kinds)"
        raise KindError(f"Unknown case kind '{name}'. Known kinds: {known}.") from None


def find_kind(name: str) -> CaseKind | None:
    return _KINDS.get(name)


def case_kinds() -> list[CaseKind]:
    """Every registered kind, in registration order."""
    return list(_KINDS.values())
