"""Help > Model cards: every installed model's card (its generated README) in a read-only browser.

The cards are read on a worker (the GUI thread touches no disk); the list fills when they arrive."""

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

from app.workers import submit
from engine.paths import models_dir
from engine.registry import CARD_README, ModelError, list_models


def read_cards() -> list[tuple[str, str]]:
    """Worker job: (name, markdown) of every installed card; the markdown says why when a README is unreadable.
    No cards: one entry without a name whose text says where OncoLens looked."""
    try:
        cards = list_models()
    except ModelError as exc:
        return [("", str(exc))]
    if not cards:
        return [("", f"No model cards are installed in {models_dir()}.")]
    out = []
    for card in cards:
        try:
            out.append((card.name, (card.folder / CARD_README).read_text(encoding="utf-8")))
        except OSError as exc:
            out.append((card.name, f"{card.name}: the card's {CARD_README} cannot be read ({exc}).\n\n"
                                   f"Intended use: {card.intended_use}"))
    return out


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
        self.text.setPlainText("Reading the model cards…")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.names)
        row.addWidget(self.text, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(row, 1)
        layout.addWidget(buttons)
        self.cards: list[tuple[str, str]] = []
        self.loaded = False
        self.names.currentRowChanged.connect(self._show)
        submit(read_cards, description="Reading the model cards", context=self, on_result=self._cards_read)

    def _cards_read(self, cards: list[tuple[str, str]]) -> None:
        self.loaded = True
        self.cards = [c for c in cards if c[0]]
        if not self.cards:
            self.text.setPlainText(cards[0][1] if cards else "")
            return
        for name, _text in self.cards:
            self.names.addItem(name)
        self.names.setCurrentRow(0)

    def _show(self, row: int) -> None:
        if 0 <= row < len(self.cards):
            self.text.setMarkdown(self.cards[row][1])
