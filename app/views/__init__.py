"""Central views, one per case kind. Later views (fluorescence segmentation, ...) register here."""

from __future__ import annotations

from app.views.base import CaseView, PlaceholderView
from app.views.fluoro_view import FluoroView
from app.views.glioma_view import GliomaView
from app.views.lymph_node_view import LymphNodeView

VIEWS: dict[str, type[CaseView]] = {"glioma_specimen": GliomaView, "lymph_node": LymphNodeView,
                                     "fluoro_frame": FluoroView}


def view_class(kind: str) -> type[CaseView] | None:
    """The view that shows cases of `kind`, or None when there is none yet."""
    return VIEWS.get(kind)


__all__ = ["VIEWS", "CaseView", "FluoroView", "GliomaView", "LymphNodeView", "PlaceholderView", "view_class"]
