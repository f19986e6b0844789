"""Reading a whole reader study in tests: every reader, the unaided arm then the aided one, every case."""

from __future__ import annotations

from collections.abc import Callable


def read_every_arm(store, study_id: str, readers: tuple[str, ...], pin: str, answer: Callable) -> None:
    """Enrol `readers` and let `answer(session, blinded, aided)` answer each case in both arms."""
    from engine.studies import AIDED, UNAIDED, ReadingSession, add_reader

    for reader in readers:
        add_reader(store, study_id, reader, reader, pin)
        for arm in (UNAIDED, AIDED):
            session = ReadingSession.open(store, study_id, reader, pin)
            assert session.aided == (arm == AIDED)
            for _ in range(session.total):
                answer(session, session.current_case(), arm == AIDED)
                session.next()
            session.finish()
