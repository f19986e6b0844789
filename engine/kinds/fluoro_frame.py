"""The fluorescence-frame kind: one intraoperative NIR frame, segmented by the method the user picks (a
trained net or the DRLSE level set); readers may outline the tumor on it."""

from __future__ import annotations

import re
from pathlib import Path

from engine.cases.admission import admit_case
from engine.cases.kinds import CaseKind, Method, ModalityRole, TaskInfo, register_kind
from engine.cases.model import Case
from engine.data import COUNTS, YX, PredictionSummary, model_id
from engine.io.images import ImageReadError, read_image
from engine.palette import PROBABILITY_COLORMAP

KIND = "fluoro_frame"
FAMILY = "fluoro_seg"
MODALITY = "NIR"
PREFERRED_NET = "unetplusplus"  # the paper's best net: the default when installed
FRAME_WORDS = {"frame", "video", "grab", "still"}


class FluoroFrameKind(CaseKind):
    name = KIND
    title = "Fluorescence frame"
    roles = (ModalityRole(MODALITY, "NIR fluorescence frame", (YX,), COUNTS),)
    tasks = (TaskInfo("tumor", "Tumor", "tumor in the frame", ("no tumor", "tumor")),)
    outline = True
    heat_colormap = PROBABILITY_COLORMAP  # the net's tumor probability, shown when the user ticks "Probability"
    overlay_heat = False  # the view opens with contours only

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

    def claims_files(self, paths) -> int:
        """One image whose name says it is a frame of a video or of a fluorescence camera."""
        words = {w for p in paths for w in re.findall(r"[a-z]+", Path(p).stem.lower())}
        return 3 if len(paths) == 1 and words & FRAME_WORDS else 0

    def case_from_files(self, paths, modality: str | None = None) -> Case:
        if len(paths) != 1:
            raise ImageReadError(f"A fluorescence-frame case is one image; {len(paths)} files were given.")
        array, meta = read_image(paths[0])
        meta.units = COUNTS
        case = Case(id=Case.new_id("frame"), kind=KIND, notes=f"Opened from {paths[0]}")
        case.add_image(MODALITY, array, meta)
        return admit_case(case, self)

    def write_demo_cases(self, folder: Path) -> list[Path]:
        from engine.phantoms.fluoro_frames import write_fluoro_demo_cases

        return write_fluoro_demo_cases(folder, size=512)  # 512 px keeps the bundled frames small


FLUORO_FRAME = register_kind(FluoroFrameKind())
