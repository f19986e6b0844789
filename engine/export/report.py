"""The one-page case report a surgeon attaches to a research record: PDF (and a PNG of the same page) drawn with
matplotlib, and a self-contained HTML page (images as data URIs).

It holds the case's pictures with their overlays (as the view shows them), each model's probabilities against
the card's operating thresholds with the call and the truth when known, each card's intended use, source and
training data, the research-use statement, timings, device and backend, weights hashes, patient and case ids
and the date. Everything fits one A4 page; long lists are shortened on the page (the HTML has them whole).
"""

from __future__ import annotations

import base64
import html
import io
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.cases.kinds import get_kind
from engine.cases.model import Case
from engine.data import Prediction, utc_now
from engine.palette import NEGATIVE_COLOR, OVERLAY_COLORS, POSITIVE_COLOR
from engine.paths import open_private

RESEARCH_USE = ("Research use only. Not for diagnostic use. The shipped models were trained on synthetic phantom "
                "images; their outputs are not a diagnosis and must not guide treatment.")
A4_INCHES = (8.27, 11.69)
MAX_PANELS = 4
MIN_PANEL_PIXELS = 400  # smaller planes are drawn enlarged in the report
PANEL_PIXELS = 900  # longest side of a picture in the report (the exported overlay PNG has full resolution)
INK, MUTED, BANNER = "#1b1f24", "#5b6470", "#8b1a1a"


@dataclass
class ModelInfo:
    """What the report says about one prediction's model (from its cards)."""

    model: str
    title: str
    cards: list[tuple[str, str]]  # (card name, weights sha256)
    source: str
    intended_use: str
    training: str
    device: str
    timings_ms: dict[str, float]
    created: str


def model_infos(case: Case, predictions: Sequence[Prediction]) -> list[ModelInfo]:
    from engine.registry import ModelError, load_card

    kind = get_kind(case.kind)
    out = []
    for p in predictions:
        sources, uses, trainings = [], [], []
        for name in p.weights_sha256:
            try:
                card = load_card(name)
            except ModelError:
                continue
            sources.append(card.source)
            uses.append(card.intended_use)
            data = card.training.get("data") or {}
            trainings.append(f"{data.get('kind', 'unknown')} data" + (f" ({data['note']})" if data.get("note") else ""))
        title, note = kind.model_title(p.summary())
        out.append(ModelInfo(p.model, f"{title} {note}".strip(), sorted(p.weights_sha256.items()),
                             "; ".join(dict.fromkeys(s for s in sources if s)) or "model card not installed",
                             " ".join(dict.fromkeys(u for u in uses if u)) or RESEARCH_USE,
                             "; ".join(dict.fromkeys(trainings)) or "not recorded", p.device or "not recorded",
                             dict(p.timings_ms), p.created))
    return out


@dataclass
class ResultRow:
    model: str
    task: str
    probability: float | None
    threshold: float | None
    call: str
    truth: str


def result_rows(case: Case, predictions: Sequence[Prediction]) -> list[ResultRow]:
    from engine.service import truth_labels

    kind = get_kind(case.kind)
    truth = truth_labels(case) or {}
    rows = []
    for p in predictions:
        title = " ".join(kind.model_title(p.summary())).strip()
        for task, result in p.tasks.items():
            rows.append(ResultRow(title, kind.task(task).title, result.probability, result.threshold, result.call,
                                  truth.get(task, "")))
    return rows


def _panels(case: Case, predictions: Sequence[Prediction], frame: int | None) -> list[tuple[str, np.ndarray, str]]:
    """(title, RGB picture, heat note) for the report: small planes (a PET slice) drawn enlarged so that their
    outlines stay thin, large ones shrunk to at most PANEL_PIXELS, anisotropic pixels at their true aspect."""
    import cv2

    from engine.export.case_export import draw_panel

    out = []
    for panel in get_kind(case.kind).overlay_panels(case, predictions, frame)[:MAX_PANELS]:
        h, w = panel.plane.shape[:2]
        factor = max(1, int(np.ceil(MIN_PANEL_PIXELS / max(h, w))))
        if factor > 1:
            panel = enlarged(panel, factor)
        picture = draw_panel(panel)
        h, w = picture.shape[:2]
        if panel.spacing is not None and panel.spacing[0] != panel.spacing[1]:
            h = max(1, round(h * panel.spacing[0] / panel.spacing[1]))
            picture = cv2.resize(picture, (w, h), interpolation=cv2.INTER_LINEAR)
        scale = PANEL_PIXELS / max(h, w)
        if scale < 1:
            picture = cv2.resize(picture, (max(1, round(w * scale)), max(1, round(h * scale))),
                                 interpolation=cv2.INTER_AREA)
        out.append((panel.title, picture, panel.heat_title))
    return out


def enlarged(panel, factor: int):
    """The panel with every pixel repeated `factor` times (as the viewer shows a small matrix), the heat map
    interpolated and the contours moved onto the finer grid."""
    import dataclasses

    import cv2

    from engine.io.overlay import display_levels

    plane = np.asarray(panel.plane)
    levels = panel.levels or (None if plane.ndim == 3 else display_levels(plane))
    big = np.repeat(np.repeat(plane, factor, axis=0), factor, axis=1)
    heat = None
    if panel.heat is not None:
        heat = cv2.resize(np.asarray(panel.heat, dtype=np.float32), (big.shape[1], big.shape[0]),
                          interpolation=cv2.INTER_LINEAR)
    contours = {name: [(np.asarray(c, dtype=float) + 0.5) * factor - 0.5 for c in loops]
                for name, loops in panel.contours.items()}
    spacing = None if panel.spacing is None else (panel.spacing[0] / factor, panel.spacing[1] / factor)
    return dataclasses.replace(panel, plane=big, heat=heat, contours=contours, levels=levels, spacing=spacing)


def _short(text: str, width: int) -> str:
    return textwrap.shorten(" ".join(str(text).split()), width=width, placeholder=" …")


def _ms(timings: Mapping[str, float]) -> str:
    total = timings.get("total")
    return f"{total:.0f} ms" if total is not None else (", ".join(f"{k} {v:.0f} ms" for k, v in timings.items()) or "-")


# -- the page (matplotlib) --------------------------------------------------------------------------------


def render_page(case: Case, predictions: Sequence[Prediction], frame: int | None = None,
                notes: Sequence[str] = ()):
    """The report page as a matplotlib Figure (A4 portrait)."""
    from matplotlib.figure import Figure

    kind = get_kind(case.kind)
    fig = Figure(figsize=A4_INCHES, dpi=100, facecolor="white")
    left, right = 0.06, 0.94

    # banner and header
    fig.patches.append(_rect(fig, 0.0, 0.955, 1.0, 0.045, BANNER))
    fig.text(0.5, 0.977, "RESEARCH USE ONLY — NOT FOR DIAGNOSTIC USE", ha="center", va="center", color="white",
             fontsize=12, weight="bold")
    fig.text(left, 0.935, f"OncoLens case report · {kind.title}", fontsize=15, weight="bold", color=INK, va="top")
    ids = [("Patient", case.patient_id or "—"), ("Case", case.id), ("Report date (UTC)", utc_now()[:19].replace("T", " ")),
           ("Results of", ", ".join(sorted({p.created[:19].replace("T", " ") for p in predictions})) or "—")]
    for i, (label, value) in enumerate(ids):
        x = left + (i % 2) * 0.46
        y = 0.900 - (i // 2) * 0.018
        fig.text(x, y, f"{label}:", fontsize=8.5, color=MUTED, va="top")
        fig.text(x + 0.15, y, _short(value, 44), fontsize=8.5, color=INK, va="top", weight="bold")

    # pictures: as tall as their aspect needs, at most 30 % of the page
    panels = _panels(case, predictions, frame)
    top, gap = 0.845, 0.015
    height = 0.12
    if panels:
        n = len(panels)
        width = (right - left - gap * (n - 1)) / n
        aspect = max(p.shape[0] / p.shape[1] for _, p, _ in panels)
        height = min(0.30, width * A4_INCHES[0] * aspect / A4_INCHES[1])
        for i, (title, picture, heat_title) in enumerate(panels):
            ax = fig.add_axes((left + i * (width + gap), top - height, width, height))
            ax.imshow(picture, interpolation="lanczos")
            ax.set_axis_off()
            ax.set_title(_short(title, 40), fontsize=8.5, color=INK, pad=3)
            if heat_title:
                ax.text(0.5, -0.02, _short(f"heat: {heat_title}", 64), transform=ax.transAxes, ha="center", va="top",
                        fontsize=6.5, color=MUTED)
    else:
        fig.text(left, top - 0.02, "No picture: the case has no image the report can draw.", color=MUTED, fontsize=8)
    height += 0.012  # room for the heat captions
    layers = {name for panel in get_kind(case.kind).overlay_panels(case, predictions, frame)[:MAX_PANELS]
              for name, loops in panel.contours.items() if loops}
    legend = [(key, label) for key, label in (("prediction", "predicted outline"), ("truth", "reference outline"))
              if key in layers]
    x = left
    for key, label in legend:
        fig.text(x, top - height - 0.028, "━", color=OVERLAY_COLORS[key], fontsize=11, va="center")
        fig.text(x + 0.022, top - height - 0.028, label, color=MUTED, fontsize=7.5, va="center")
        x += 0.17
    if any(heat for _, _, heat in panels):
        fig.text(x, top - height - 0.028, "heat layers fade in over their lowest 35 %, so weak evidence leaves the "
                 "image visible", color=MUTED, fontsize=7.5, va="center")

    # probabilities against thresholds
    rows = result_rows(case, predictions)[:10]
    y0 = top - height - 0.055
    fig.text(left, y0, "Probabilities against the operating thresholds", fontsize=10.5, weight="bold", color=INK,
             va="top")
    row_h = 0.022
    bar_left, bar_width = left + 0.23, 0.21
    columns = {"value": bar_left + bar_width + 0.012, "call": left + 0.55, "truth": left + 0.765}
    header_y = y0 - 0.027
    for key, label in (("value", "p / threshold"), ("call", "call"), ("truth", "truth")):
        fig.text(columns[key], header_y, label, fontsize=7, color=MUTED, va="center")
    fig.text(bar_left, header_y, "0", fontsize=7, color=MUTED, va="center")
    fig.text(bar_left + bar_width, header_y, "1", fontsize=7, color=MUTED, va="center", ha="right")
    for i, row in enumerate(rows):
        y = header_y - 0.02 - i * row_h
        fig.text(left, y, _short(f"{row.task} · {row.model}", 34), fontsize=7.5, color=INK, va="center")
        ax = fig.add_axes((bar_left, y - 0.007, bar_width, 0.014))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_axis_off()
        ax.add_patch(_bar(0, 1, "#e3e7ec"))
        if row.probability is not None:
            positive = row.threshold is not None and row.probability >= row.threshold
            ax.add_patch(_bar(0, row.probability, POSITIVE_COLOR if positive else NEGATIVE_COLOR))
        if row.threshold is not None:
            ax.plot([row.threshold, row.threshold], [-0.25, 1.25], color=INK, lw=1.4, clip_on=False)
        value = "—" if row.probability is None else f"{row.probability:.3f}"
        threshold = "" if row.threshold is None else f" / {row.threshold:.3f}"
        fig.text(columns["value"], y, f"{value}{threshold}", fontsize=8, color=INK, va="center")
        fig.text(columns["call"], y, _short(row.call, 26), fontsize=7.5, color=INK, va="center", weight="bold")
        fig.text(columns["truth"], y, _short(row.truth or "—", 24), fontsize=7.5, color=INK, va="center")
    y = header_y - 0.02 - len(rows) * row_h + 0.006
    fig.text(left, y, "Bar: probability (amber at or above the threshold, blue below); black tick: the card's "
             "operating threshold.", fontsize=7, color=MUTED, va="top")

    # models: cards, hashes, device, timings
    y -= 0.03
    fig.text(left, y, "Models", fontsize=10.5, weight="bold", color=INK, va="top")
    y -= 0.024
    infos = model_infos(case, predictions)
    for info in infos:
        fig.text(left, y, _short(f"{info.title} ({info.model})", 60), fontsize=8.5, weight="bold", color=INK, va="top")
        fig.text(left + 0.50, y, _short(f"{info.device} · {_ms(info.timings_ms)}", 62), fontsize=7.5, color=INK,
                 va="top")
        y -= 0.016
        hashes = "  ".join(f"{name} {sha[:12]}" for name, sha in info.cards)
        for line in textwrap.wrap(f"weights sha256: {hashes}", 130)[:2]:
            fig.text(left + 0.015, y, line, fontsize=6.8, color=MUTED, va="top", family="monospace")
            y -= 0.013
        for line in textwrap.wrap(f"Source: {info.source}", 120)[:2]:
            fig.text(left + 0.015, y, line, fontsize=7, color=INK, va="top")
            y -= 0.013
        fig.text(left + 0.015, y, _short(f"Training: {info.training}", 125), fontsize=7, color=INK, va="top")
        y -= 0.013
        fig.text(left + 0.015, y, _short(f"Intended use (model card): {info.intended_use}", 125), fontsize=7,
                 color=BANNER, va="top")
        y -= 0.02
        if y < 0.12:
            break
    # notes and footer
    extra = [n for n in notes if n] + [w for p in predictions for w in p.warnings]
    if extra and y > 0.1:
        fig.text(left, y, "\n".join(textwrap.wrap(_short("Notes: " + "; ".join(dict.fromkeys(extra)), 380), 125)[:3]),
                 fontsize=7, color=MUTED, va="top")
    fig.patches.append(_rect(fig, left, 0.062, right - left, 0.0008, MUTED))
    for i, line in enumerate(textwrap.wrap(RESEARCH_USE, 135)):
        fig.text(left, 0.05 - i * 0.013, line, fontsize=7.5, color=BANNER, va="top", weight="bold")
    from engine import __version__

    fig.text(right, 0.024, f"OncoLens {__version__} · page 1 of 1", fontsize=7, color=MUTED, ha="right", va="top")
    return fig


def _rect(fig, x: float, y: float, w: float, h: float, color: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, transform=fig.transFigure, facecolor=color, edgecolor="none", zorder=-1)


def _bar(start: float, end: float, color: str):
    from matplotlib.patches import Rectangle

    return Rectangle((start, 0), end - start, 1, facecolor=color, edgecolor="none")


# -- HTML -------------------------------------------------------------------------------------------------


def _png_data_uri(picture: np.ndarray) -> str:
    import cv2

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("a report picture could not be encoded as PNG")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def render_html(case: Case, predictions: Sequence[Prediction], frame: int | None = None,
                notes: Sequence[str] = ()) -> str:
    """The report as one self-contained HTML page (pictures embedded, no external files or scripts)."""
    kind = get_kind(case.kind)
    e = html.escape
    pictures = "".join(
        f"<figure><img alt='{e(title)}' src='{_png_data_uri(picture)}'><figcaption>{e(title)}"
        f"{'<br><small>heat: ' + e(heat) + '</small>' if heat else ''}</figcaption></figure>"
        for title, picture, heat in _panels(case, predictions, frame))
    result_html = []
    for row in result_rows(case, predictions):
        p = row.probability
        positive = p is not None and row.threshold is not None and p >= row.threshold
        bar = ("" if p is None else
               f"<span class='fill' style='width:{100 * p:.1f}%;background:{POSITIVE_COLOR if positive else NEGATIVE_COLOR}'>"
               "</span>")
        tick = "" if row.threshold is None else f"<span class='tick' style='left:{100 * row.threshold:.1f}%'></span>"
        result_html.append(
            f"<tr><td>{e(row.model)}</td><td>{e(row.task)}</td><td><span class='bar'>{bar}{tick}</span></td>"
            f"<td>{'—' if p is None else f'{p:.4f}'}</td><td>{'' if row.threshold is None else f'{row.threshold:.4f}'}</td>"
            f"<td><b>{e(row.call)}</b></td><td>{e(row.truth)}</td></tr>")
    model_html = []
    for info in model_infos(case, predictions):
        hashes = "".join(f"<li><code>{e(name)}</code> sha256 <code>{e(sha)}</code></li>" for name, sha in info.cards)
        timings = ", ".join(f"{e(k)} {v:.1f} ms" for k, v in info.timings_ms.items()) or "—"
        model_html.append(
            f"<section class='model'><h3>{e(info.title)} <small>({e(info.model)})</small></h3>"
            f"<p><b>Device / backend:</b> {e(info.device)}<br><b>Timings:</b> {timings}<br>"
            f"<b>Results created:</b> {e(info.created)}</p><ul>{hashes}</ul>"
            f"<p><b>Source:</b> {e(info.source)}<br><b>Training:</b> {e(info.training)}</p>"
            f"<p class='use'><b>Intended use (model card):</b> {e(info.intended_use)}</p></section>")
    extra = [n for n in notes if n] + [w for p in predictions for w in p.warnings]
    notes_html = "".join(f"<li>{e(n)}</li>" for n in dict.fromkeys(extra))
    from engine import __version__

    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>OncoLens case report {e(case.id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; color: {INK}; max-width: 60rem; margin: 0 auto; padding: 0 1rem 2rem; }}
.banner {{ background: {BANNER}; color: white; font-weight: bold; text-align: center; padding: .5rem; }}
table {{ border-collapse: collapse; }} td, th {{ padding: .2rem .6rem; border-bottom: 1px solid #dde2e8; text-align: left; }}
figure {{ display: inline-block; margin: .3rem; vertical-align: top; }} figure img {{ max-width: 22rem; max-height: 22rem; }}
figcaption {{ font-size: .85rem; color: {MUTED}; }}
.bar {{ position: relative; display: inline-block; width: 12rem; height: .8rem; background: #e3e7ec; }}
.fill {{ position: absolute; left: 0; top: 0; bottom: 0; }} .tick {{ position: absolute; top: -.2rem; bottom: -.2rem; width: 2px; background: {INK}; }}
.use {{ color: {BANNER}; }} code {{ font-size: .8rem; }} .footer {{ color: {BANNER}; font-weight: bold; border-top: 1px solid {MUTED}; padding-top: .5rem; }}
</style></head><body>
<div class="banner">RESEARCH USE ONLY — NOT FOR DIAGNOSTIC USE</div>
<h1>OncoLens case report · {e(kind.title)}</h1>
<table><tr><th>Patient</th><td>{e(case.patient_id or '—')}</td><th>Case</th><td>{e(case.id)}</td></tr>
<tr><th>Report date (UTC)</th><td>{e(utc_now())}</td><th>Kind</th><td>{e(case.kind)}</td></tr></table>
<h2>Images with overlays</h2>
<p>{pictures}</p>
<p><small>Outlines: <span style="color:{OVERLAY_COLORS['prediction']}">■</span> predicted,
<span style="color:{OVERLAY_COLORS['truth']}">■</span> reference. Heat layers fade in over their lowest 35 %.</small></p>
<h2>Probabilities against the operating thresholds</h2>
<table><tr><th>Model</th><th>Task</th><th>Probability (bar) and threshold (tick)</th><th>p</th><th>threshold</th>
<th>call</th><th>truth</th></tr>{''.join(result_html)}</table>
<h2>Models</h2>{''.join(model_html)}
{'<h2>Notes</h2><ul>' + notes_html + '</ul>' if notes_html else ''}
<p class="footer">{e(RESEARCH_USE)}</p>
<p><small>OncoLens {e(__version__)}</small></p>
</body></html>
"""


def write_case_report(case: Case, predictions: Sequence[Prediction], paths: Mapping[str, Path],
                      frame: int | None = None, notes: Sequence[str] = ()) -> list[Path]:
    """Write the report to `paths` {'pdf': ..., 'png': ..., 'html': ...} (any subset); return the files."""
    written = []
    if "pdf" in paths or "png" in paths:
        fig = render_page(case, predictions, frame, notes)
        if "pdf" in paths:
            from matplotlib.backends.backend_pdf import PdfPages

            buffer = io.BytesIO()
            with PdfPages(buffer, metadata={"Title": f"OncoLens case report {case.id}", "Creator": "OncoLens",
                                            "Subject": RESEARCH_USE}) as pdf:
                pdf.savefig(fig)
            with open_private(paths["pdf"], "wb") as fh:
                fh.write(buffer.getvalue())
            written.append(Path(paths["pdf"]))
        if "png" in paths:
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=100)
            with open_private(paths["png"], "wb") as fh:
                fh.write(buffer.getvalue())
            written.append(Path(paths["png"]))
    if "html" in paths:
        with open_private(paths["html"], "w", encoding="utf-8") as fh:
            fh.write(render_html(case, predictions, frame, notes))
        written.append(Path(paths["html"]))
    return written
