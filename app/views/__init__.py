"""Central views, one per case kind. Later views (lymph node, fluorescence segmentation, ...) register here."""

from __future__ import annotations

from app.views.base import CaseView, PlaceholderView
from app.views.glioma_view import GliomaView

VIEWS: dict[str, type[CaseView]] = {"glioma_specimen": GliomaView}


def view_class(kind: str) -> type[CaseView] | None:
    """The view that shows cases of `kind`, or None when there is none yet."""
    return VIEWS.get(kind)


__all__ = ["VIEWS", "CaseView", "GliomaView", "PlaceholderView", "view_class"]
