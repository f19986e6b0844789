"""Reader studies: set-up, blinded reading sessions with durable answers, analysis and the HTML report.

The command line side (`oncolens study ...`) is engine.cli.study. The analysis names are imported on first
use, so a reading session does not pay for loading scipy.
"""

from __future__ import annotations

from typing import Any

from engine.studies.model import (
    AIDED,
    ARMS,
    SCALES,
    UNAIDED,
    AuthError,
    ConfidenceScale,
    Study,
    StudyError,
    WashoutError,
    create_study,
    list_studies,
    load_study,
    reading_order,
)
from engine.studies.readers import (
    PIN_POLICY,
    LockedError,
    ReaderInfo,
    add_reader,
    list_readers,
    reset_pin,
    unlock_reader,
)
from engine.studies.session import (
    BlindedCase,
    ModelAid,
    Progress,
    ReaderAnswer,
    ReadingSession,
    study_progress,
)

__all__ = [
    "AIDED", "ARMS", "PIN_POLICY", "SCALES", "UNAIDED", "AuthError", "BlindedCase", "ConfidenceScale",
    "LockedError", "ModelAid", "Progress", "ReaderAnswer", "ReaderInfo", "ReadingSession", "Study", "StudyAnalysis",
    "StudyData", "StudyError", "WashoutError", "add_reader", "analyze_study", "collect_study_data", "create_study",
    "export_long_format", "export_reads_csv", "list_readers", "list_studies", "load_study", "read_rows",
    "reading_order", "reset_pin", "study_progress", "unlock_reader",
]


_ANALYSIS_NAMES = ("StudyAnalysis", "StudyData", "analyze_study", "collect_study_data", "export_long_format",
                   "export_reads_csv", "read_rows")


def __getattr__(name: str) -> Any:
    if name in _ANALYSIS_NAMES:
        from engine.studies import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module 'engine.studies' has no attribute {name!r}")
