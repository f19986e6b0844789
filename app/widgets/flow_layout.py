"""A layout that places its widgets left to right and wraps onto a new row when the width runs out, so a
view's controls never force the window wider than a 1366-pixel screen allows."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtWidgets import QLayout, QLayoutItem, QSizePolicy, QWidget


class FlowLayout(QLayout):
    """Rows of widgets at their size hints; as wide as the widest single widget at the least."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 8) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self.setContentsMargins(0, 0, 0, 0)
        self.setSpacing(spacing)

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._arrange(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._arrange(rect, move=True)

    def sizeHint(self) -> QSize:
        """One row of everything (the width it asks for when there is room)."""
        visible = [item for item in self._items if not item.isEmpty()]
        width = sum(item.sizeHint().width() for item in visible) + self.spacing() * max(len(visible) - 1, 0)
        height = max((item.sizeHint().height() for item in visible), default=0)
        margins = self.contentsMargins()
        return QSize(width + margins.left() + margins.right(), height + margins.top() + margins.bottom())

    def minimumSize(self) -> QSize:
        size = QSize()
        for item in self._items:
            if not item.isEmpty():
                size = size.expandedTo(item.minimumSize()).expandedTo(QSize(item.sizeHint().width(), 0))
        margins = self.contentsMargins()
        return size + QSize(margins.left() + margins.right(), margins.top() + margins.bottom())

    def _arrange(self, rect: QRect, move: bool) -> int:
        """Place (or only measure) the rows inside `rect`; return the height they take."""
        margins = self.contentsMargins()
        area = rect.adjusted(margins.left(), margins.top(), -margins.right(), -margins.bottom())
        x, y, row_height = area.x(), area.y(), 0
        row: list[tuple[QLayoutItem, QSize]] = []

        def place_row() -> None:
            left = area.x()
            for item, size in row:  # centred vertically in their row
                if move:
                    item.setGeometry(QRect(QPoint(left, y + (row_height - size.height()) // 2), size))
                left += size.width() + self.spacing()

        for item in self._items:
            if item.isEmpty():
                continue
            size = item.sizeHint()
            policy = item.widget().sizePolicy() if item.widget() is not None else None
            if policy is not None and policy.horizontalPolicy() == QSizePolicy.Policy.Ignored:
                size = item.minimumSize()
            if row and x + size.width() > area.right() + 1:
                place_row()
                y += row_height + self.spacing()
                x, row_height, row = area.x(), 0, []
            row.append((item, size))
            x += size.width() + self.spacing()
            row_height = max(row_height, size.height())
        place_row()
        return y + row_height - rect.y() + margins.bottom()
