"""The fluorescence-frame kind: one intraoperative NIR frame, segmented by the method the user picks (a
trained net or the DRLSE level set); readers may outline the tumor on it."""

from __future__ import annotations

from pathlib import Path

from engine.cases.kinds import CaseKind, Method, ModalityRole, TaskInfo, register_kind
from engine.data import COUNTS, YX, PredictionSummary, model_id

KIND = "fluoro_frame"
FAMILY = "fluoro_seg"
MODALITY = "NIR"
PREFERRED_NET = "unetplusplus"  # the paper's best net: the default when installed


class FluoroFrameKind(CaseKind):
    name = KIND
    title = "Fluorescence frame"
    roles = (ModalityRole(MODALITY, "NIR fluorescence frame", (YX,), COUNTS),)
    tasks = (TaskInfo("tumor", "Tumor", "tumor in the frame", ("no tumor", "tumor")),)
    outline = True

    def methods(self) -> list[Method]:
        """Installed nets in the paper's table order, UNet++ first when installed, DRLSE last (always there)."""
        from engine.predict.fluoro import installed_methods, method_label

        ids = installed_methods()
        if PREFERRED_NET in ids:
            ids = [PREFERRED_NET] + [m for m in ids if m != PREFERRED_NET]
        return [Method(m, method_label(m)) for m in ids]

    def make_predictor(self, modalities: tuple[str, ...], method: str | None = None):
        from engine.predict.fluoro import FluoroSegPredictor

        return FluoroSegPredictor(method or self.default_method())

    def primary_model(self) -> str:
        return model_id(FAMILY, self.default_method() or PREFERRED_NET)

    def model_title(self, summary: PredictionSummary) -> tuple[str, str]:
        from engine.predict.fluoro import method_label

        return method_label(summary.variant), "segmentation"

    def cards_label(self) -> str:
        from engine.predict.fluoro import DRLSE, installed_methods

        nets = [m for m in installed_methods() if m != DRLSE]
        return f"{FAMILY}: {', '.join(nets) or 'no nets installed'} + DRLSE"

    def write_demo_cases(self, folder: Path) -> list[Path]:
        from engine.phantoms.fluoro_frames import write_fluoro_demo_cases

        return write_fluoro_demo_cases(folder, size=512)  # 512 px keeps the bundled frames small


FLUORO_FRAME = register_kind(FluoroFrameKind())
