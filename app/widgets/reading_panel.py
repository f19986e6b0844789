"""Reading panel: the study's question, the call, the confidence rating, a comment, progress and moving on.

It only displays and reports clicks; `app.reading.ReadingController` decides what is saved. There is no
save button: every complete answer is saved at once and the panel shows when ("saved ✓ hh:mm:ss").
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from engine.studies import ConfidenceScale, Progress
from engine.studies.model import KEY_COMMENT, KEY_NEGATIVE, KEY_NEXT, KEY_POSITIVE, KEY_PREVIOUS, KEY_RESUME

ARROWS = {"Right": "→", "Left": "←", "Up": "↑", "Down": "↓", "Home": "Home"}



def key_name(key: str) -> str:
    return ARROWS.get(key, key)


class ReadingPanel(QWidget):
    """One blinded case's question and answer controls; signals carry what the reader clicked."""

    call_clicked = Signal(bool)
    confidence_clicked = Signal(float)
    comment_committed = Signal(str)
    next_clicked = Signal()
    previous_clicked = Signal()

    def __init__(self, study_name: str, reader_name: str, aided: bool, question: str, task_label: str,
                 names: tuple[str, str], scale: ConfidenceScale, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("readingPanel")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # takes focus back from the comment field
        self.scale = scale

        self.title = QLabel(study_name)
        self.title.setObjectName("panelTitle")
        self.title.setWordWrap(True)
        self.reader_label = QLabel(f"Reader: {reader_name}")
        self.reader_label.setObjectName("smallPrint")
        self.arm_label = QLabel("Aided: the model's output is shown" if aided else "Unaided: images only")
        self.arm_label.setObjectName("readingArm")
        self.arm_label.setProperty("aided", "true" if aided else "false")
        self.progress_label = QLabel("")
        self.progress_label.setObjectName("readingProgress")
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(False)

        self.aid_label = QLabel("")
        self.aid_label.setObjectName("readingAid")
        self.aid_label.setWordWrap(True)
        self.aid_label.setTextFormat(Qt.TextFormat.RichText)
        self.aid_label.setVisible(False)
        self.unavailable_label = QLabel("")
        self.unavailable_label.setObjectName("readingUnavailable")
        self.unavailable_label.setWordWrap(True)
        self.unavailable_label.setVisible(False)

        self.question_label = QLabel(question)
        self.question_label.setObjectName("readingQuestion")
        self.question_label.setWordWrap(True)

        self.positive_button = self._call_button(f"{names[0]}   [{KEY_POSITIVE}]", True)
        self.negative_button = self._call_button(f"{names[1]}   [{KEY_NEGATIVE}]", False)
        self.call_group = QButtonGroup(self)
        self.call_group.setExclusive(False)  # "no call yet" must be showable
        for button in (self.positive_button, self.negative_button):
            self.call_group.addButton(button)
        calls = QHBoxLayout()
        calls.addWidget(self.positive_button)
        calls.addWidget(self.negative_button)

        self.confidence_title = QLabel(f"How likely is it {task_label}?")
        self.confidence_title.setObjectName("columnHeader")
        self.confidence_buttons: dict[float, QPushButton] = {}
        self.slider: QSlider | None = None
        self.confidence_value = QLabel("")
        self.confidence_value.setObjectName("readingConfidenceValue")
        confidence = self._build_confidence(task_label)

        self.comment_edit = QLineEdit()
        self.comment_edit.setPlaceholderText(f"Comment (optional) — {KEY_COMMENT} to type, Enter to keep")
        self.comment_edit.returnPressed.connect(self.leave_comment)

        self.contour_label = QLabel("")
        self.contour_label.setObjectName("readingMessage")
        self.contour_label.setWordWrap(True)
        self.contour_label.setVisible(False)

        self.message_label = QLabel("")
        self.message_label.setObjectName("readingMessage")
        self.message_label.setWordWrap(True)
        self.saved_label = QLabel("")
        self.saved_label.setObjectName("readingSaved")

        self.previous_button = QPushButton(f"◀ Previous  [{key_name(KEY_PREVIOUS)}]")
        self.previous_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.previous_button.clicked.connect(self.previous_clicked)
        self.next_button = QPushButton(f"Next  [Enter / {key_name(KEY_NEXT)}] ▶")
        self.next_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.next_button.clicked.connect(self.next_clicked)
        moves = QHBoxLayout()
        moves.addWidget(self.previous_button)
        moves.addWidget(self.next_button)

        keys = [f"{KEY_POSITIVE} / {KEY_NEGATIVE} call", f"{self.scale.keys[0][0]}–{self.scale.keys[-1][0]} "
                "or ↑/↓ confidence", "Enter next (when answered)", f"{key_name(KEY_NEXT)} / {key_name(KEY_PREVIOUS)} "
                "move", f"{key_name(KEY_RESUME)} first unanswered", f"{KEY_COMMENT} comment"]
        self.keys_label = QLabel("Keys: " + " · ".join(keys))
        self.keys_label.setObjectName("smallPrint")
        self.keys_label.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(8)
        for widget in (self.title, self.reader_label, self.arm_label, self.progress_label, self.progress_bar,
                       _line(), self.unavailable_label, self.aid_label, self.question_label):
            layout.addWidget(widget)
        layout.addLayout(calls)
        layout.addWidget(self.confidence_title)
        layout.addLayout(confidence)
        layout.addWidget(self.comment_edit)
        layout.addWidget(self.contour_label)
        layout.addWidget(self.message_label)
        layout.addWidget(self.saved_label)
        layout.addLayout(moves)
        layout.addStretch(1)
        layout.addWidget(self.keys_label)
        self._answer_widgets = [self.positive_button, self.negative_button, *self.confidence_buttons.values(),
                                self.comment_edit] + ([self.slider] if self.slider else [])

    def _call_button(self, text: str, positive: bool) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName("callButton")
        button.setCheckable(True)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Enter must mean "next", not "press this button"
        button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        button.clicked.connect(lambda: self.call_clicked.emit(positive))
        return button

    def _build_confidence(self, label: str) -> QGridLayout:
        grid = QGridLayout()
        grid.setVerticalSpacing(4)
        if self.scale.integer and self.scale.high - self.scale.low <= 10:  # one button per rating
            wording = dict(self.scale.wording(label))
            keys = {value: key for key, value in self.scale.keys}
            for row, value in enumerate(range(int(self.scale.high), int(self.scale.low) - 1, -1)):
                button = QPushButton(f"[{keys.get(float(value), '')}]   {wording.get(value, value)}")
                button.setObjectName("confidenceButton")
                button.setCheckable(True)
                button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
                button.clicked.connect(lambda _checked=False, v=float(value): self.confidence_clicked.emit(v))
                self.confidence_buttons[float(value)] = button
                grid.addWidget(button, row, 0)
            return grid
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(int(self.scale.low), int(self.scale.high))
        self.slider.setSingleStep(1)
        self.slider.setPageStep(10)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.sliderReleased.connect(lambda: self.confidence_clicked.emit(float(self.slider.value())))
        self.slider.actionTriggered.connect(self._slider_action)
        self.slider.valueChanged.connect(lambda v: self.confidence_value.setText(f"{v}"))
        anchors = self.scale.wording(label)
        low, high = QLabel(anchors[0][1]), QLabel(anchors[-1][1])
        for anchor in (low, high):
            anchor.setObjectName("smallPrint")
        high.setAlignment(Qt.AlignmentFlag.AlignRight)
        grid.addWidget(self.slider, 0, 0, 1, 2)
        grid.addWidget(self.confidence_value, 0, 2)
        grid.addWidget(low, 1, 0)
        grid.addWidget(high, 1, 1)
        return grid

    def _slider_action(self, action: int) -> None:
        if action != QSlider.SliderAction.SliderMove:  # a click on the groove: a page step, final at once
            slider = self.slider
            self.confidence_clicked.emit(float(slider.sliderPosition()))

    # -- what the controller sets ---------------------------------------------------------------

    def show_case(self, progress: Progress, unavailable: str | None,
                  aid: tuple[float, float, str] | None) -> None:
        """A new case: progress, the 'cannot be shown' note or the answer controls, the model aid (aided only)."""
        self.set_progress(progress)
        self.unavailable_label.setText(unavailable or "")
        self.unavailable_label.setVisible(bool(unavailable))
        for widget in self._answer_widgets:
            widget.setEnabled(not unavailable)
        if aid is None or unavailable:
            self.aid_label.setText("")
            self.aid_label.setVisible(False)
        else:
            probability, threshold, call = aid
            self.aid_label.setText(f"Model: <b>{100 * probability:.1f} %</b> &nbsp;·&nbsp; threshold "
                                   f"{100 * threshold:.0f} % &nbsp;·&nbsp; call <b>{call}</b>")
            self.aid_label.setVisible(True)
        self.set_message("")
        self.previous_button.setEnabled(progress.position > 1)

    def set_progress(self, progress: Progress) -> None:
        self.progress_label.setText(f"{progress.position} of {progress.total}   "
                                    f"({progress.answered} answered)")
        self.progress_bar.setRange(0, progress.total)
        self.progress_bar.setValue(progress.answered)

    def set_answer(self, call: bool | None, confidence: float | None, comment: str) -> None:
        self.positive_button.setChecked(call is True)
        self.negative_button.setChecked(call is False)
        for value, button in self.confidence_buttons.items():
            button.setChecked(confidence is not None and value == confidence)
        if self.slider is not None:
            self.slider.blockSignals(True)
            self.slider.setValue(int(round(confidence)) if confidence is not None else int(self.scale.midpoint))
            self.slider.blockSignals(False)
            self.confidence_value.setText("—" if confidence is None else f"{confidence:g}")
        if not self.comment_edit.hasFocus():
            self.comment_edit.setText(comment)

    def set_contour_count(self, regions: int | None) -> None:
        """How many outlines the reader has closed on this case; None hides the line (no contours asked)."""
        self.contour_label.setVisible(regions is not None)
        if regions is not None:
            drawn = "none drawn" if regions == 0 else f"{regions} region{'s' if regions > 1 else ''} drawn"
            self.contour_label.setText(f"Tumor outline: {drawn} — click on the image, double-click or Space "
                                       "closes, Backspace undoes, Delete clears")

    def set_saving(self) -> None:
        """The answer is complete and on its way to the store."""
        self.saved_label.setText("saving…")

    def set_saved(self, when: str | None) -> None:
        self.saved_label.setText(f"saved ✓ {when}" if when else "not answered yet")
        self.saved_label.setProperty("saved", "true" if when else "false")
        self.saved_label.style().unpolish(self.saved_label)
        self.saved_label.style().polish(self.saved_label)

    def set_message(self, text: str, warning: bool = False) -> None:
        self.message_label.setText(text)
        self.message_label.setProperty("warning", "true" if warning else "false")
        self.message_label.style().unpolish(self.message_label)
        self.message_label.style().polish(self.message_label)

    # -- comment focus --------------------------------------------------------------------------

    def focus_comment(self) -> None:
        if self.comment_edit.isEnabled():
            self.comment_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
            self.comment_edit.selectAll()

    def comment_has_focus(self) -> bool:
        return self.comment_edit.hasFocus()

    def leave_comment(self) -> None:
        """Keep the typed comment and give the keys back to the reading shortcuts."""
        if self.comment_edit.hasFocus():
            self.setFocus(Qt.FocusReason.ShortcutFocusReason)
            self.comment_committed.emit(self.comment_edit.text())


def _line() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.HLine)
    return line
