"""Exports of one case for other programs and for the research record: overlays (PNG), masks (PNG, NIfTI, DICOM
SEG), contours (JSON, CSV), probabilities (CSV, JSON) and the one-page case report (PDF, HTML). Kind-generic: what
to draw and write comes from the case's kind (engine.cases.kinds); the CLI's `oncolens export` and the GUI's
File > Export case… both call `export_case`."""

from engine.export.case_export import (
    ARTEFACTS,
    ExportError,
    ExportExists,
    ExportOptions,
    export_case,
    load_export_case,
    parse_what,
    predictions_for_export,
)

__all__ = ["ARTEFACTS", "ExportError", "ExportExists", "ExportOptions", "export_case", "load_export_case", "parse_what",
           "predictions_for_export"]
