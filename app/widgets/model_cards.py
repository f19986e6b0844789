"""Help > Model cards: every installed model's card (its generated README) in a read-only browser."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QListWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from engine.paths import models_dir
from engine.registry import CARD_README, ModelCard, ModelError, list_models


class ModelCardsDialog(QDialog):
    """A list of cards on the left, the selected card's README on the right."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model cards")
        self.resize(1100, 760)
        self.names = QListWidget()
        self.names.setFixedWidth(260)
        self.text = QTextBrowser()
        self.text.setOpenExternalLinks(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.names)
        row.addWidget(self.text, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(row, 1)
        layout.addWidget(buttons)

        try:
            self.cards: list[ModelCard] = list_models()
        except ModelError as exc:
            self.cards = []
            self.text.setPlainText(str(exc))
        for card in self.cards:
            self.names.addItem(card.name)
        self.names.currentRowChanged.connect(self._show)
        if self.cards:
            self.names.setCurrentRow(0)
        elif not self.text.toPlainText():
            self.text.setPlainText(f"No model cards are installed in {models_dir()}.")

    def _show(self, row: int) -> None:
        if not 0 <= row < len(self.cards):
            return
        card = self.cards[row]
        readme = card.folder / CARD_README
        try:
            self.text.setMarkdown(readme.read_text(encoding="utf-8"))
        except OSError as exc:
            self.text.setPlainText(f"{card.name}: the card's {CARD_README} cannot be read ({exc}).\n\n"
                                   f"Intended use: {card.intended_use}")
