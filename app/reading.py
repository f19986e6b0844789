"""Reading mode: drives an engine `ReadingSession` from the reading panel and the keyboard.

The controller holds the answer being given for the case on screen and saves it through
`ReadingSession.answer` the moment it is complete (a call plus a rating on the study's scale); a later
change is saved again, which the engine keeps as a new read that supersedes the old one. It never sees
truth: everything it shows comes from the `BlindedCase` the session hands out.

The session lives on the workers: every answer, move and read-ahead of the next case is a job of one
`SerialQueue`, so they reach the store in the order the reader gave them, never two at once, and the GUI
thread touches no disk. While the next case is read ahead, the reader reads this one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QWidget

from app.widgets.reading_panel import ReadingPanel
from app.workers import SerialQueue
from engine.cases.model import Case, GroundTruth
from engine.data import Prediction
from engine.service import truth_labels
from engine.studies import (
    BlindedCase,
    ModelAid,
    Progress,
    ReaderAnswer,
    ReadingSession,
    StudyError,
    WashoutError,
)
from engine.studies.model import (
    KEY_COMMENT,
    KEY_NEGATIVE,
    KEY_NEXT,
    KEY_POSITIVE,
    KEY_PREVIOUS,
    KEY_RESUME,
)

KEY_ACCEPT = ("Return", "Enter")  # next case, once the one on screen is answered
KEY_UP, KEY_DOWN = "Up", "Down"  # confidence one step up / down
KEY_LEAVE_COMMENT = "Escape"
KEY_CLOSE_OUTLINE, KEY_UNDO_POINT, KEY_CLEAR_OUTLINE = "Space", "Backspace", "Delete"  # contour studies

log = logging.getLogger(__name__)
Answer = tuple[bool, float, str, list | None]  # call, confidence, comment, outline


def _polygons(contour) -> list[list[tuple[float, float]]] | None:
    """A contour as plain lists of (x, y); None when nothing is drawn."""
    polygons = [[(float(x), float(y)) for x, y in p] for p in (contour or [])]
    return polygons or None


def answer_names(kind: str, label: str) -> tuple[str, str]:
    """(positive, negative) wording of the study's call, from the model cards' label names where known."""
    words = [(truth_labels(Case("names", kind, truth=GroundTruth({label: v}))) or {}).get(label) for v in (1, 0)]
    if not all(words) or words == ["positive", "negative"]:
        return label, f"not {label}"
    return words[0], words[1]


def blinded_to_case(blinded: BlindedCase) -> Case:
    """A throw-away `Case` holding only the blinded images, for the case views (no id, truth or predictions)."""
    return Case(id="blinded", kind=blinded.kind, images=dict(blinded.images))


def aid_to_prediction(aid: ModelAid, names: tuple[str, str]) -> Prediction:
    """The aided reader's model output in the shape the case views draw (probability, threshold, call, maps)."""
    prediction = Prediction(family=aid.family, variant=aid.variant, masks=dict(aid.masks),
                            heatmaps=dict(aid.heatmaps))
    prediction.set_result(aid.label, names[0] if aid.positive else names[1], aid.probability, aid.threshold)
    return prediction


def _answer_of(saved: ReaderAnswer | None) -> Answer | None:
    if saved is None:
        return None
    return saved.positive, saved.confidence, saved.comment, _polygons(saved.contour)


def local_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return iso


# -- jobs on the session's queue (worker threads; no Qt) --------------------------------------------------


@dataclass(frozen=True)
class SessionView:
    """What a job hands the GUI: the case now on screen (None: stay, e.g. at the end), progress, an end note."""

    case: BlindedCase | None
    progress: Progress
    message: str = ""
    warning: bool = False
    following: OpenedSession | None = None  # the reader's next arm, opened when this one is complete


@dataclass(frozen=True)
class OpenedSession:
    """A signed-in session as the sign-in job opened it: everything the window shows first, read already."""

    session: ReadingSession
    study_name: str
    case_kind: str
    contours: bool
    names: tuple[str, str]
    first: SessionView


def open_session(store, study_id: str, reader_id: str, pin: str) -> OpenedSession:
    """Worker job: check the PIN (scrypt, slow on purpose), open the session at its first unanswered case."""
    return _opened(ReadingSession.open(store, study_id, reader_id, pin))


def _opened(session: ReadingSession) -> OpenedSession:
    study = session.study
    first = session.current_case()
    return OpenedSession(session, study.name, study.case_kind, study.contours,
                         answer_names(first.kind, first.task_label), SessionView(first, session.progress()))


def _answer_job(session: ReadingSession, case_id: str, answer: Answer) -> tuple[ReaderAnswer, SessionView]:
    if session.current_case().case_id != case_id:  # cannot happen in order; never save to the wrong case
        raise StudyError("That answer was for another case and is not saved; give it again.")
    positive, confidence, comment, contour = answer
    saved = session.answer(positive, confidence, comment, contour=contour)
    return saved, SessionView(session.current_case(), session.progress())


def _move_job(session: ReadingSession, step: str) -> SessionView:
    """"next", "previous" or "resume"; at the end of the order, close the session if it may be closed."""
    if step == "resume":
        return SessionView(session.resume(), session.progress())
    following = session.next() if step == "next" else session.previous()
    progress = session.progress()
    if following is not None or step != "next":
        return SessionView(following, progress)
    if session.is_complete:
        return _after_complete(session, progress)
    try:
        session.finish()  # closes only when every case left is one that cannot be shown
    except StudyError as exc:
        return SessionView(None, progress, f"{exc} Press {KEY_RESUME} for the first unanswered case.", True)
    return SessionView(None, progress, "Session finished; the cases that could not be shown are reported. Thank you.")


def _after_complete(session: ReadingSession, progress: Progress) -> SessionView:
    """Every case of this arm is answered: open the next arm (the aided one after the unaided one) when it is
    due, else say when it opens or that the study is done."""
    done = f"All {progress.total} cases are answered ({session.arm} session) — thank you."
    try:
        following = session.next_session()
    except WashoutError as exc:
        return SessionView(None, progress, f"{done} {exc} Sign in again then; Study ▸ Stop reading closes this "
                                           "session.")
    if following is None:
        return SessionView(None, progress, f"{done} Study ▸ Stop reading closes the session.")
    return SessionView(None, progress, done, following=_opened(following))


def _read_ahead(session: ReadingSession) -> None:
    session.prefetch(session.position + 1)


class ReadingController(QObject):
    """One reading session on screen: panel, keyboard shortcuts on `window`, saving and moving (on workers)."""

    case_shown = Signal(object)  # BlindedCase, for the window's central view
    arm_finished = Signal(object)  # OpenedSession of the reader's next arm, for the window to switch to

    def __init__(self, opened: OpenedSession, window: QWidget,
                 on_error: Callable[[BaseException, str], None]) -> None:
        super().__init__(window)
        self.session = opened.session  # used by the jobs of `queue` only, one at a time
        self.queue = SerialQueue(f"reading session {opened.session.study_id}")
        self._on_error = on_error
        blinded = opened.first.case
        self.scale = blinded.scale
        self.names = opened.names
        self.panel = ReadingPanel(opened.study_name, self.session.display_name, self.session.aided,
                                  blinded.question, blinded.task_label, self.names, self.scale)
        self.call: bool | None = None
        self.confidence: float | None = None
        self.comment = ""
        self.contour: list[list[tuple[float, float]]] | None = None  # the reader's outline (contour studies)
        self.drawing = None  # the view's ContourDrawing once attached
        self.case: BlindedCase = blinded
        self.progress: Progress = opened.first.progress
        self._sent: Answer | None = None  # the answer saved, or on its way to the store, for the case on screen
        self._moving = 0  # moves asked for whose case is not on screen yet
        self._closed = False
        self.panel.call_clicked.connect(self.choose_call)
        self.panel.confidence_clicked.connect(self.rate)
        self.panel.comment_committed.connect(self.commit_comment)
        self.panel.next_clicked.connect(lambda: self.next(require_answer=False))
        self.panel.previous_clicked.connect(self.previous)
        self.shortcuts: list[QShortcut] = []
        self._bind_keys(window)

    def idle(self) -> bool:
        """Every answer and move given so far has reached the store and the screen."""
        return self.queue.idle()

    def _submit(self, job, *args, what: str, on_result, on_error=None) -> None:
        self.queue.submit(job, self.session, *args, description=what, context=self, on_result=on_result,
                          on_error=on_error or (lambda exc, _tb: self._on_error(exc, f"{what} failed")))

    # -- keyboard ---------------------------------------------------------------------------------

    def _bind_keys(self, window: QWidget) -> None:
        keys: list[tuple[str, Callable[[], None]]] = [
            (KEY_POSITIVE, lambda: self.choose_call(True)),
            (KEY_NEGATIVE, lambda: self.choose_call(False)),
            (KEY_NEXT, lambda: self.next(require_answer=False)),
            (KEY_PREVIOUS, self.previous),
            (KEY_RESUME, self.resume),
            (KEY_COMMENT, self.panel.focus_comment),
            (KEY_UP, lambda: self.step(+1)),
            (KEY_DOWN, lambda: self.step(-1)),
            (KEY_LEAVE_COMMENT, self.panel.leave_comment),
            *[(key, self._enter) for key in KEY_ACCEPT],
            *[(key, lambda v=value: self.rate(v)) for key, value in self.scale.keys],
        ]
        for key, slot in keys:
            shortcut = QShortcut(QKeySequence(key), window)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(slot)
            self.shortcuts.append(shortcut)

    def attach_drawing(self, drawing, window: QWidget) -> None:
        """Contour studies: the view's drawing reports outlines here; Space / Backspace / Delete edit them."""
        self.drawing = drawing
        drawing.changed.connect(self.set_contour)
        for key, slot in ((KEY_CLOSE_OUTLINE, drawing.close_polygon), (KEY_UNDO_POINT, drawing.undo),
                          (KEY_CLEAR_OUTLINE, drawing.clear_drawing)):
            shortcut = QShortcut(QKeySequence(key), window)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(slot)
            self.shortcuts.append(shortcut)

    def _enter(self) -> None:
        if self.panel.comment_has_focus():
            self.panel.leave_comment()
        else:
            self.next(require_answer=True)

    # -- showing ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._show(self.case)
        self._submit(_read_ahead, what="Reading the next case ahead", on_result=lambda _none: None,
                     on_error=self._read_ahead_failed)

    def _show(self, blinded: BlindedCase) -> None:
        self.case = blinded
        answer = blinded.answer
        self._sent = _answer_of(answer)
        self.call = None if answer is None else answer.positive
        self.confidence = None if answer is None else answer.confidence
        self.comment = "" if answer is None else answer.comment
        self.contour = None if answer is None else _polygons(answer.contour)
        aid = None
        if blinded.aid is not None:
            aid = (blinded.aid.probability, blinded.aid.threshold, self.names[0] if blinded.aid.positive else self.names[1])
        self.panel.show_case(self.progress, blinded.unavailable, aid)
        self.panel.set_answer(self.call, self.confidence, self.comment)
        self.panel.set_saved(None if answer is None else local_time(answer.answered_at))
        self.panel.set_contour_count(len(self.contour or []) if blinded.draw_contour else None)
        self.case_shown.emit(blinded)

    # -- answering --------------------------------------------------------------------------------

    def choose_call(self, positive: bool) -> None:
        if self._refuse_unavailable():
            return
        self.call = bool(positive)
        self.panel.set_message("")
        if self.confidence is not None and not self._fits(self.call, self.confidence):
            self.confidence = None
            self.panel.set_message(f"Choose a confidence that fits the call ({self._keys_hint()}).")
        self.panel.set_answer(self.call, self.confidence, self.comment)
        self._save()

    def rate(self, value: float) -> None:
        if self._refuse_unavailable():
            return
        if self.call is not None:
            try:
                self.scale.check(self.call, value)
            except StudyError as exc:
                self.panel.set_message(str(exc), warning=True)
                self.panel.set_answer(self.call, self.confidence, self.comment)
                return
        self.confidence = float(value)
        self.panel.set_message("" if self.call is not None else
                               f"Now the call: {KEY_POSITIVE} = {self.names[0]}, {KEY_NEGATIVE} = {self.names[1]}.")
        self.panel.set_answer(self.call, self.confidence, self.comment)
        self._save()

    def step(self, direction: int) -> None:
        size = 1.0 if self.scale.integer else 5.0
        start = self.scale.midpoint if self.confidence is None else self.confidence
        self.rate(min(max(start + direction * size, self.scale.low), self.scale.high))

    def commit_comment(self, text: str) -> None:
        self.comment = text.strip()
        if self._sent is not None:
            self._save()
        elif self.comment:
            self.panel.set_message("Comment kept; it is saved with your answer.")

    def set_contour(self, polygons: list) -> None:
        """The reader closed, reopened or cleared an outline: kept, and saved with the answer when complete."""
        if self._refuse_unavailable() or not self.case.draw_contour:
            return
        self.contour = _polygons(polygons)
        self.panel.set_contour_count(len(self.contour or []))
        if self._sent is not None:
            self._save()
        elif self.contour:
            self.panel.set_message("Outline kept; it is saved with your answer.")

    def _fits(self, positive: bool, value: float) -> bool:
        try:
            self.scale.check(positive, value)
        except StudyError:
            return False
        return True

    def _refuse_unavailable(self) -> bool:
        if self._moving:  # keys pressed before the next case is on screen would answer a case not seen yet
            self.panel.set_message("The case is on its way…")
            return True
        if self.case.unavailable:
            self.panel.set_message("This case cannot be shown, so it cannot be answered; "
                                   f"press {KEY_NEXT} for the next case.", warning=True)
        return bool(self.case.unavailable)

    def _save(self) -> None:
        """Send the answer on screen to the store when it is complete and differs from the one sent before."""
        if self.call is None or self.confidence is None or self.case.unavailable or self._closed:
            return
        answer: Answer = (self.call, self.confidence, self.comment, self.contour if self.case.draw_contour else None)
        if answer == self._sent:
            return
        self._sent = answer
        case_id = self.case.case_id
        self.panel.set_saving()
        self._submit(_answer_job, case_id, answer, what="Saving the answer",
                     on_result=lambda result: self._saved(case_id, *result),
                     on_error=lambda exc, _tb: self._not_saved(case_id, exc))

    def _saved(self, case_id: str, saved: ReaderAnswer, view: SessionView) -> None:
        if self._closed:
            return
        self.progress = view.progress
        self.panel.set_progress(view.progress)
        if self.case.case_id == case_id:
            self.case = view.case
            self.panel.set_saved(local_time(saved.answered_at))

    def _not_saved(self, case_id: str, exc: BaseException) -> None:
        on_screen = not self._closed and self.case.case_id == case_id
        if on_screen:
            self._sent = _answer_of(self.case.answer)  # what the store has: the next change is sent again
            self.panel.set_saved(None if self.case.answer is None else local_time(self.case.answer.answered_at))
        if isinstance(exc, StudyError) and on_screen:
            self.panel.set_message(str(exc), warning=True)
            return
        if on_screen:
            self.panel.set_message("Not saved — see the error message.", warning=True)
        self._on_error(exc, "Answer not saved")  # the store failed: the reader must know

    # -- moving -----------------------------------------------------------------------------------

    def _pending(self) -> bool:
        """A call or rating given but not saved (the answer is incomplete)."""
        given = (self.call, self.confidence)
        return given != (None, None) and (self._sent is None or given != self._sent[:2])

    def _flush_comment(self) -> None:
        """A comment typed but not yet kept with Enter is kept before the case changes."""
        text = self.panel.comment_edit.text().strip()
        if text != self.comment and not self.case.unavailable:
            self.commit_comment(text)

    def next(self, require_answer: bool = False) -> None:
        self._flush_comment()
        if require_answer and self._sent is None and not self.case.unavailable:
            need = "a confidence" if self.call is not None else "the call"
            self.panel.set_message(f"Not answered yet: give {need} first "
                                   f"(or press {KEY_NEXT} to leave this case for later).", warning=True)
            return
        if require_answer and self.case.draw_contour and self.call and not self.contour:
            self.panel.set_message(f"You called it {self.names[0]}: outline the tumor on the image first "
                                   f"(or press {KEY_NEXT} to go on without an outline).", warning=True)
            return
        left_open = self.case.position if self._pending() else None
        self._move("next", left_open)

    def previous(self) -> None:
        self._flush_comment()
        self._move("previous")

    def resume(self) -> None:
        self._flush_comment()
        self._move("resume")

    def _move(self, step: str, left_open: int | None = None) -> None:
        if self._closed:
            return
        self._moving += 1
        self._submit(_move_job, step, what="Opening the case", on_result=lambda view: self._moved(view, left_open),
                     on_error=self._move_failed)
        self._submit(_read_ahead, what="Reading the next case ahead", on_result=lambda _none: None,
                     on_error=self._read_ahead_failed)

    def _moved(self, view: SessionView, left_open: int | None) -> None:
        self._moving -= 1
        if self._closed:
            return
        self.progress = view.progress
        if view.case is None:
            self.panel.set_progress(view.progress)
            if view.message:
                self.panel.set_message(view.message, warning=view.warning)
            if view.following is not None:
                self.arm_finished.emit(view.following)
            return
        self._show(view.case)
        if left_open is not None:
            self.panel.set_message(f"Case {left_open} was left unanswered (its answer was incomplete).",
                                   warning=True)

    def _move_failed(self, exc: BaseException, _tb: str) -> None:
        self._moving -= 1
        self._on_error(exc, "Case not opened")

    @staticmethod
    def _read_ahead_failed(exc: BaseException, tb: str) -> None:
        log.warning("Reading the next case ahead failed (it is read again when shown): %s\n%s", exc, tb)

    def close(self) -> None:
        """Leave the session: a comment typed is kept; answers on their way still reach the store."""
        self._flush_comment()
        self._closed = True
        if self.drawing is not None:
            self.drawing.changed.disconnect(self.set_contour)
            self.drawing = None
        for shortcut in self.shortcuts:
            shortcut.setEnabled(False)
            shortcut.deleteLater()
        self.shortcuts.clear()

    def _keys_hint(self) -> str:
        keys = [k for k, _ in self.scale.keys]
        return f"keys {keys[0]}–{keys[-1]} or ↑/↓"
