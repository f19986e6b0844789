"""A modality-contribution bar: one horizontal bar split into each modality's share of the attribution (e.g. US
share vs CT share of the integrated gradients of one site), each part labelled with its modality and percent."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from app import theme


class ContributionBar(QWidget):
    """Shares (fractions summing to 1) as adjacent coloured parts; grey and empty until `set_shares`."""

    def __init__(self, names: Sequence[str], colors: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.names = tuple(names)
        self.colors = tuple(QColor(c) for c in colors)
        self.shares: tuple[float, ...] | None = None
        self.setFixedHeight(20)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(220, 20)

    def set_shares(self, shares: Sequence[float] | None) -> None:
        """Each modality's share, in the order of `names`; None shows an empty bar."""
        if shares is not None:
            total = sum(max(float(s), 0.0) for s in shares)
            shares = tuple(max(float(s), 0.0) / total for s in shares) if total > 0 else None
        self.shares = shares
        self.setToolTip("" if shares is None else "  ·  ".join(
            f"{name} {100 * share:.0f} %" for name, share in zip(self.names, shares, strict=True)))
        self.update()

    def text(self) -> str:
        """The bar in words, e.g. 'US 31 % · CT 69 %' (what the tooltip says)."""
        return self.toolTip()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(1, 1, -1, -1)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(theme.TRACK))
        painter.drawRoundedRect(rect, 3, 3)
        if self.shares is not None:
            left = rect.left()
            font = painter.font()
            font.setPointSizeF(max(7.0, font.pointSizeF() * 0.8))
            font.setBold(True)
            painter.setFont(font)
            for name, share, color in zip(self.names, self.shares, self.colors, strict=True):
                part = QRectF(left, rect.top(), rect.width() * share, rect.height())
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(color)
                painter.drawRect(part)
                label = f"{name} {100 * share:.0f} %"
                if painter.fontMetrics().horizontalAdvance(label) + 6 <= part.width():
                    painter.setPen(QColor(theme.PLOT_BACKGROUND))
                    painter.drawText(part, Qt.AlignmentFlag.AlignCenter, label)
                left += part.width()
        painter.end()
