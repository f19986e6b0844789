"""Central views: the app registers, per case kind, the view that shows it (`register_view`); nothing else in
the app is written per kind. A kind whose descriptor names a `view` key uses the view registered under it."""

from __future__ import annotations

from app.views.base import CaseView, PlaceholderView
from app.views.fluoro_view import FluoroView
from app.views.glioma_view import GliomaView
from app.views.lymph_node_view import LymphNodeView
from app.views.petct_view import PetCtView
from app.views.thyroid_view import ThyroidView
from app.views.video_view import VideoView
from engine.cases.kinds import find_kind

VIEWS: dict[str, type[CaseView]] = {}


def register_view(key: str, view: type[CaseView]) -> type[CaseView]:
    """Show cases of kind `key` (or of kinds whose descriptor names `key` as their view) with `view`."""
    VIEWS[key] = view
    return view


def unregister_view(key: str) -> None:
    VIEWS.pop(key, None)


def view_class(kind: str) -> type[CaseView] | None:
    """The view that shows cases of `kind`, or None when there is none."""
    info = find_kind(kind)
    return VIEWS.get((info.view if info is not None else "") or kind)


register_view("glioma_specimen", GliomaView)
register_view("lymph_node", LymphNodeView)
register_view("fluoro_frame", FluoroView)
register_view("thyroid_usct", ThyroidView)
register_view("sarcoma_petct", PetCtView)
register_view("fluoro_video", VideoView)

__all__ = ["VIEWS", "CaseView", "FluoroView", "GliomaView", "LymphNodeView", "PetCtView", "PlaceholderView",
           "ThyroidView", "VideoView", "register_view", "unregister_view", "view_class"]
