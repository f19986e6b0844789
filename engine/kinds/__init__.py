"""The built-in case kinds; importing this package registers them (engine.cases.kinds is the registry).

Adding a kind is one module here (a `CaseKind` subclass registered with `register_kind`), its predictor and
nets, and, in the app, one `register_view` line; nothing else branches on a kind's name.
"""

from engine.cases.kinds import CaseKind, KindError, case_kinds, find_kind, get_kind, register_kind

# isort: off
# Registration order is display order (browser, dialogs).
from engine.kinds import glioma  # noqa: F401
from engine.kinds import lymph_node  # noqa: F401
from engine.kinds import fluoro_frame  # noqa: F401
from engine.kinds import fluoro_video  # noqa: F401
from engine.kinds import sarcoma_petct  # noqa: F401
from engine.kinds import thyroid_usct  # noqa: F401
# isort: on

__all__ = ["CaseKind", "KindError", "case_kinds", "find_kind", "get_kind", "register_kind"]
