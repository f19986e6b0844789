"""The live view's heads-up display over the image: what runs (source, method, inference path), how fast (fps
in and out, dropped frames, capture-to-overlay latency), smoothing when on, the recording indicator, the frozen
badge and the signal-lost notice. The texts are plain functions of a LiveUpdate, so tests read them directly."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QVBoxLayout, QWidget

from app.live.session import LiveUpdate
from engine.live.pipeline import ENDED, SIGNAL_LOST, STOPPED


def method_title(method: str) -> str:
    from engine.predict.fluoro import method_label

    return method_label(method) if method else "no method"


def _ms(stats: dict, stage: str, pct: int) -> str:
    value = stats.get(f"{stage}_p{pct}_ms")
    return "–" if value is None else f"{value:.0f}"


def hud_lines(update: LiveUpdate) -> list[str]:
    """The HUD's lines, newest state: source; method and path; fps; latency; smoothing; faults when any."""
    s = update.stats
    lines = [update.source,
             f"{method_title(update.method)}" + (f" · {update.path}" if update.path else ""),
             f"in {s.get('fps_in', 0.0):.1f} fps · out {s.get('fps_out', 0.0):.1f} fps · "
             f"dropped {s.get('dropped', 0)}",
             f"capture→overlay p50 {_ms(s, 'capture_to_overlay', 50)} ms · "
             f"p99 {_ms(s, 'capture_to_overlay', 99)} ms"]
    if update.smoothing is not None:
        lines.append(f"smoothing on (EMA w={update.smoothing:.2f})")
    faults = [f"{label} {s[key]}" for key, label in (("corrupt", "corrupt"), ("source_gaps", "source gaps"),
                                                      ("signal_losses", "signal losses"),
                                                      ("reconnects", "reconnects")) if s.get(key)]
    if faults:
        lines.append(" · ".join(faults))
    return lines


def recording_text(seconds: float, frames: int) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"● REC {minutes:02d}:{secs:02d} · {frames} frames"


def status_notice(status: str, detail: str) -> tuple[str, str]:
    """(headline, detail) shown over the image when the stream is not streaming; ('', '') when it is."""
    if status == SIGNAL_LOST:
        return "Signal lost — reconnecting…", detail
    if status == ENDED:
        return "Source ended", detail
    if status == STOPPED:
        return "Stopped", ""
    return "", ""


def _label(name: str) -> QLabel:
    label = QLabel("")
    label.setObjectName(name)
    label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
    label.setVisible(False)
    return label


class HudLayer(QWidget):
    """Labels laid over the image area (same grid cell as the image panel): HUD top left, recording and frozen
    top right, the signal-lost notice in the middle."""

    def __init__(self, image: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.info = _label("liveHud")
        self.info.setTextFormat(Qt.TextFormat.PlainText)
        self.recording = _label("liveRecording")
        self.frozen = _label("liveFrozen")
        self.notice = QFrame()  # headline large, the source's own words below it
        self.notice.setObjectName("liveNotice")
        self.notice.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.notice.setVisible(False)
        self.notice_title = QLabel("")
        self.notice_title.setObjectName("liveNoticeTitle")
        self.notice_detail = QLabel("")
        self.notice_detail.setObjectName("liveNoticeDetail")
        notice_layout = QVBoxLayout(self.notice)
        notice_layout.setContentsMargins(28, 14, 28, 14)
        for label in (self.notice_title, self.notice_detail):
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setWordWrap(True)
            label.setTextFormat(Qt.TextFormat.PlainText)
            notice_layout.addWidget(label)
        self.notice.setMinimumWidth(420)
        self.notice.setMaximumWidth(720)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(image, 0, 0)
        corner = QWidget()
        corner.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        corner_layout = QVBoxLayout(corner)
        corner_layout.setContentsMargins(0, 0, 0, 0)
        corner_layout.addWidget(self.recording, 0, Qt.AlignmentFlag.AlignRight)
        corner_layout.addWidget(self.frozen, 0, Qt.AlignmentFlag.AlignRight)
        align = Qt.AlignmentFlag
        grid.addWidget(self.info, 0, 0, align.AlignTop | align.AlignLeft)
        grid.addWidget(corner, 0, 0, align.AlignTop | align.AlignRight)
        grid.addWidget(self.notice, 0, 0, align.AlignCenter)
        for label in (self.info, self.recording, self.frozen, self.notice):
            label.raise_()
        corner.raise_()

    def show_update(self, update: LiveUpdate) -> None:
        self.info.setText("\n".join(hud_lines(update)))
        self.info.setVisible(True)
        headline, detail = status_notice(update.status, update.detail)
        self.set_notice(headline, detail)

    def set_notice(self, headline: str, detail: str = "") -> None:
        detail = detail if headline else ""
        if (headline, detail) != (self.notice_title.text(), self.notice_detail.text()):
            self.notice_title.setText(headline)
            self.notice_detail.setText(detail)
            self.notice_detail.setVisible(bool(detail))
        self.notice.setVisible(bool(headline))

    def notice_text(self) -> str:
        """The notice as shown: headline, then the detail on its own line ('' when none is shown)."""
        return "\n".join(t for t in (self.notice_title.text(), self.notice_detail.text()) if t)

    def set_recording(self, text: str | None) -> None:
        self.recording.setVisible(bool(text))
        if text:
            self.recording.setText(text)

    def set_frozen(self, text: str | None) -> None:
        self.frozen.setVisible(bool(text))
        if text:
            self.frozen.setText(text)
