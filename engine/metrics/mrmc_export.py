"""Reads in long format, and the input files of three MRMC tools, each written to the rules of the tool's reader.

Long format: one row (readerID, caseID, modalityID, score) per read, truth rows first with readerID and modalityID
"truth" and score 0 (negative) or 1 (positive). A data frame of these rows goes straight into the iMRMC R
package's `doIMRMC`.

An iMRMC input file is a free-text header, a line `BEGIN DATA:`, then the rows as comma-separated text. The three
tools that read such files parse them differently, so each gets its own file (all end in `.imrmc`, the only
extension both the iMRMC app and RJafroc open):

| file | read by | rules of that reader that shape the file |
|---|---|---|
| `<stem>.imrmc` | iMRMC Java app (1.2.5 or later) | extension csv/imrmc/omrmc; any header line containing N0:, N1:, NR: or NM: (any case) must carry an integer after its first three characters; the header ends at the first line that starts with BEGIN DATA:; rows are split at every comma (no quoting) and lose all whitespace; truth rows have readerID "truth" or "-1"; a reader in a modality with fewer than 3 negative or 3 positive cases is left out |
| `<stem>_imrmc_R.imrmc` | iMRMC R package, `doIMRMC("<file>")` | exactly one line containing BEGIN DATA:; the rest is read by `read.csv` (double quotes honoured, whitespace kept, `NA` missing); truth rows need readerID "truth" and modalityID "truth" |
| `<stem>_rjafroc.imrmc` and `<stem>_rjafroc_ids.csv` | RJafroc, `DfReadDataFile(file, format = "iMRMC")` | header lines exactly N0:n, N1:n, NR:n, NM:n, then a line exactly BEGIN DATA:; rows end at the first line without 4 comma-separated fields; reader IDs integers, case IDs numbers, truth rows readerID -1; every reader reads every case in every modality |

Hence: the title is one line without colons in every file; IDs with a comma, whitespace or a double quote are
refused for the Java app (it would split or merge them) and quoted for the R package; RJafroc gets readers and
cases numbered 1..J and 1..K, with the numbering in the `_ids.csv`. A modality read by one reader who reads
nothing else (the model) breaks RJafroc's fully crossed design, so in the RJafroc file that reader's scores are
copied to every reader; the two-treatment OR analysis of that file then equals the model-vs-readers analysis
(`or_hillis_fixed_reference`). The tests re-implement each tool's parser and read every file back.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.exports import csv_writer
from engine.metrics.classification import _labels
from engine.metrics.mrmc_covariance import _ids
from engine.paths import open_private

TRUTH_READER_ID = "truth"
TRUTH_MODALITY_ID = "truth"
RJAFROC_TRUTH_READER_ID = "-1"
LONG_FORMAT_COLUMNS = ("readerID", "caseID", "modalityID", "score")
IMRMC_SUFFIX = ".imrmc"
_JAVA_MIN_PER_CLASS = 3
_UNSAFE_FOR_JAVA = re.compile(r'[,\s"]')
_HEADER_KEYS = ("N0", "N1", "NR", "NM")


def _number(value: float) -> str:
    """Shortest exact text of a score; integers without '.0'."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def long_format_rows(truth: Any, readings: Mapping[str, Mapping[str, Any]],
                     case_ids: Sequence[Any] | None = None) -> list[dict[str, str]]:
    """Reads as rows (readerID, caseID, modalityID, score), truth rows first.

    `readings[modality][reader] = scores` (one per case). Truth rows: readerID and modalityID "truth", score 1
    for a positive case and 0 for a negative one. Scores are written exactly (shortest round-trip form, integers
    without ".0"); every reader scores every case.
    """
    y = _labels(truth)
    ids = _ids(case_ids, y.size, "", "case_ids")
    rows = [{"readerID": TRUTH_READER_ID, "caseID": cid, "modalityID": TRUTH_MODALITY_ID, "score": str(int(v))}
            for cid, v in zip(ids, y, strict=True)]
    for modality, readers in readings.items():
        if str(modality) == TRUTH_MODALITY_ID:
            raise ValueError(f"modality id {TRUTH_MODALITY_ID!r} is reserved for the truth rows")
        for reader, scores in readers.items():
            if str(reader) in (TRUTH_READER_ID, RJAFROC_TRUTH_READER_ID):
                raise ValueError(f"reader id {str(reader)!r} is reserved for the truth rows")
            s = np.asarray(scores, dtype=float)
            if s.shape != (y.size,) or not np.isfinite(s).all():
                raise ValueError(f"reader {reader!r} in modality {modality!r} needs {y.size} finite scores, "
                                 f"got shape {s.shape}")
            rows.extend({"readerID": str(reader), "caseID": cid, "modalityID": str(modality), "score": _number(v)}
                        for cid, v in zip(ids, s, strict=True))
    return rows


# ----------------------------------------------------------------------------------------------------
# Shared pieces of the three files


def imrmc_title(title: str) -> str:
    """The study title as one header line no tool mistakes for anything else: line breaks become spaces and
    colons become ' -' (a colon could read as a key like N0: or as BEGIN DATA:)."""
    text = " ".join(str(title).split())
    text = re.sub(r"\s*:\s*", " - ", text).strip(" -")
    if len(text) < 3 or text.upper() in _HEADER_KEYS:  # the Java app fails on a one-character line
        text = f"OncoLens reader study {text}".strip()
    return text


def _split_rows(rows: Sequence[Mapping[str, str]]) -> tuple[list[Mapping[str, str]], list[Mapping[str, str]]]:
    truth = [r for r in rows if r["readerID"] == TRUTH_READER_ID]
    reads = [r for r in rows if r["readerID"] != TRUTH_READER_ID]
    if not truth:
        raise ValueError("the rows have no truth rows; build them with long_format_rows")
    if any(r["score"] not in ("0", "1") for r in truth):
        raise ValueError("truth rows must score 0 (negative) or 1 (positive)")
    return truth, reads


def _header(title: str, truth: Sequence[Mapping[str, str]], reads: Sequence[Mapping[str, str]]) -> list[str]:
    n_pos = sum(r["score"] == "1" for r in truth)
    return [imrmc_title(title), f"N0:{len(truth) - n_pos}", f"N1:{n_pos}",
            f"NR:{len({r['readerID'] for r in reads})}", f"NM:{len({r['modalityID'] for r in reads})}",
            "BEGIN DATA:"]


def _checked_path(path: str | Path, tool: str) -> Path:
    out = Path(path)
    if out.suffix != IMRMC_SUFFIX:
        raise ValueError(f"{out.name}: {tool} input files must end in {IMRMC_SUFFIX} (the iMRMC app and RJafroc "
                         f"refuse other extensions); name it e.g. {out.stem}{IMRMC_SUFFIX}")
    return out


def _bad_ids(rows: Sequence[Mapping[str, str]], bad: Any) -> list[str]:
    found = {r[key] for r in rows for key in ("readerID", "caseID", "modalityID") if bad(r[key])}
    return sorted(found)


def _text(lines: Sequence[str]) -> str:
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------
# One file per tool: the text first (pure), then the writers


def imrmc_java_text(rows: Sequence[Mapping[str, str]], title: str) -> str:
    """The iMRMC Java app's input file. IDs are written as they are, so an ID with a comma, whitespace or a double
    quote is refused: the app splits rows at every comma and deletes whitespace."""
    truth, reads = _split_rows(rows)
    unsafe = _bad_ids(rows, lambda text: bool(_UNSAFE_FOR_JAVA.search(text)) or not text)
    if unsafe:
        raise ValueError(f"the iMRMC Java app cannot read the ids {unsafe}: it splits rows at every comma and deletes "
                         "whitespace. Rename those readers or cases, or use the R package's file, which quotes them.")
    return _text(_header(title, truth, reads) + [",".join(r[c] for c in LONG_FORMAT_COLUMNS) for r in rows])


def imrmc_r_text(rows: Sequence[Mapping[str, str]], title: str) -> str:
    """The iMRMC R package's input file for `doIMRMC("<file>")`: the rows after BEGIN DATA: as CSV, IDs quoted
    where needed. Refused: an ID "NA" (read.csv makes it missing), one with leading or trailing whitespace (the
    package trims reader and modality names but not the rows), one containing "BEGIN DATA:" or a line break."""
    truth, reads = _split_rows(rows)
    bad = _bad_ids(rows, lambda t: not t or t == "NA" or t != t.strip() or "BEGIN DATA:" in t
                   or "\n" in t or "\r" in t)
    if bad:
        raise ValueError(f"the iMRMC R package cannot read the ids {bad} as they are (NA, surrounding whitespace, "
                         "'BEGIN DATA:' or a line break); rename those readers or cases")
    body = io.StringIO()
    csv_writer(body, lineterminator="\n").writerows([[r[c] for c in LONG_FORMAT_COLUMNS] for r in rows])
    return _text(_header(title, truth, reads)) + body.getvalue()


def _fully_crossed(reads: Sequence[Mapping[str, str]]) -> tuple[dict[str, dict[str, dict[str, str]]], list[str]]:
    """{modality: {reader: {case: score}}} with every fixed reader (the only reader of a modality, reading
    nothing else) copied to every other reader, and the modalities so filled. Refuses designs still not crossed."""
    grid: dict[str, dict[str, dict[str, str]]] = {}
    for r in reads:
        grid.setdefault(r["modalityID"], {}).setdefault(r["readerID"], {})[r["caseID"]] = r["score"]
    readers_of = {m: list(by_reader) for m, by_reader in grid.items()}
    copied = []
    for modality, readers in readers_of.items():
        others = {rd for m, rs in readers_of.items() if m != modality for rd in rs}
        if len(readers) == 1 and readers[0] not in others and others:
            scores = grid[modality].pop(readers[0])
            grid[modality] = {rd: dict(scores) for rd in _ordered_readers(readers_of, skip=modality)}
            copied.append(modality)
    readers = _ordered_readers({m: list(g) for m, g in grid.items()})
    cases = {c for g in grid.values() for s in g.values() for c in s}
    missing = [f"{rd} in {m}" for m, g in grid.items() for rd in readers
               if rd not in g or set(g[rd]) != cases]
    if missing:
        raise ValueError(f"RJafroc needs every reader to read every case in every modality; incomplete: "
                         f"{', '.join(missing[:10])}")
    return grid, copied


def _ordered_readers(readers_of: Mapping[str, Sequence[str]], skip: str | None = None) -> list[str]:
    seen: dict[str, None] = {}
    for modality, readers in readers_of.items():
        if modality != skip:
            seen.update(dict.fromkeys(readers))
    return list(seen)


def rjafroc_texts(rows: Sequence[Mapping[str, str]], title: str, ids_name: str) -> tuple[str, str]:
    """RJafroc's iMRMC file and the CSV that maps its numbers back (columns kind, rjafroc_id, oncolens_id).

    Readers are numbered 1..J in order of appearance, cases 1..K in truth order; truth rows have readerID -1. A
    modality read by one reader alone (the model) is copied to every reader so that the design is fully crossed.
    """
    truth, reads = _split_rows(rows)
    grid, copied = _fully_crossed(reads)
    bad = sorted(m for m in grid if not m or "," in m or m != m.strip())
    if bad:
        raise ValueError(f"RJafroc cannot read the modality ids {bad}: no commas or surrounding whitespace")
    case_no = {r["caseID"]: k for k, r in enumerate(truth, start=1)}
    reader_no = {rd: j for j, rd in enumerate(_ordered_readers({m: list(g) for m, g in grid.items()}), start=1)}
    body = [f"{RJAFROC_TRUTH_READER_ID},{case_no[r['caseID']]},{TRUTH_MODALITY_ID},{r['score']}" for r in truth]
    body += [f"{reader_no[rd]},{case_no[c]},{m},{s}" for m, g in grid.items() for rd, cs in g.items()
             for c, s in cs.items()]
    note = f" ({', '.join(copied)} copied to every reader)" if copied else ""
    crossed = [{"readerID": rd, "modalityID": m} for m, g in grid.items() for rd in g]
    text = _text(_header(f"{title}, readers and cases numbered as in {ids_name}{note}", truth, crossed) + body)
    ids = io.StringIO()
    writer = csv_writer(ids, lineterminator="\n")
    writer.writerow(["kind", "rjafroc_id", "oncolens_id"])
    writer.writerows([("reader", j, rd) for rd, j in reader_no.items()])
    writer.writerows([("case", k, c) for c, k in case_no.items()])
    return text, ids.getvalue()


def _write(path: Path, text: str) -> Path:
    with open_private(path, encoding="utf-8") as handle:  # missing folders are created 0700
        handle.write(text)
    return path


def write_imrmc(path: str | Path, rows: Sequence[Mapping[str, str]], title: str = "OncoLens reader study") -> Path:
    """Write `long_format_rows` output as the iMRMC Java app's input file (see `imrmc_java_text`)."""
    return _write(_checked_path(path, "iMRMC"), imrmc_java_text(rows, title))


def write_imrmc_r(path: str | Path, rows: Sequence[Mapping[str, str]], title: str = "OncoLens reader study") -> Path:
    """Write `long_format_rows` output as the iMRMC R package's input file (see `imrmc_r_text`)."""
    return _write(_checked_path(path, "iMRMC"), imrmc_r_text(rows, title))


def write_rjafroc_imrmc(path: str | Path, rows: Sequence[Mapping[str, str]],
                        title: str = "OncoLens reader study") -> tuple[Path, Path]:
    """Write RJafroc's iMRMC file and `<name>_ids.csv` beside it (see `rjafroc_texts`)."""
    out = _checked_path(path, "RJafroc")
    ids = out.with_name(f"{out.stem}_ids.csv")
    text, mapping = rjafroc_texts(rows, title, ids.name)
    return _write(out, text), _write(ids, mapping)


def mrmc_tool_files(stem: str, rows: Sequence[Mapping[str, str]], title: str) -> tuple[dict[str, str], list[str]]:
    """{file name: text} of every tool's file that `rows` allow, and a note for each tool that gets none or will
    read the file only in part. Names: `<stem>.imrmc` (iMRMC Java app), `<stem>_imrmc_R.imrmc` (iMRMC R package),
    `<stem>_rjafroc.imrmc` and `<stem>_rjafroc_ids.csv` (RJafroc)."""
    files: dict[str, str] = {}
    notes: list[str] = []
    ids_name = f"{stem}_rjafroc_ids.csv"
    builders = ((f"{stem}.imrmc", lambda: {f"{stem}.imrmc": imrmc_java_text(rows, title)}),
                (f"{stem}_imrmc_R.imrmc", lambda: {f"{stem}_imrmc_R.imrmc": imrmc_r_text(rows, title)}),
                (f"{stem}_rjafroc.imrmc", lambda: dict(zip((f"{stem}_rjafroc.imrmc", ids_name),
                                                           rjafroc_texts(rows, title, ids_name)))))
    for name, build in builders:
        try:
            files.update(build())
        except ValueError as error:
            notes.append(f"{name} not written: {error}")
    truth, _ = _split_rows(rows)
    n_pos = sum(r["score"] == "1" for r in truth)
    if min(n_pos, len(truth) - n_pos) < _JAVA_MIN_PER_CLASS:
        notes.append(f"The iMRMC Java app leaves out readers with fewer than {_JAVA_MIN_PER_CLASS} negative or "
                     f"{_JAVA_MIN_PER_CLASS} positive cases; this study has {len(truth) - n_pos} and {n_pos}.")
    return files, notes


def write_mrmc_tool_files(out_dir: str | Path, stem: str, rows: Sequence[Mapping[str, str]],
                          title: str) -> tuple[list[Path], list[str]]:
    """Write `mrmc_tool_files` into `out_dir`: (paths written, notes)."""
    files, notes = mrmc_tool_files(stem, rows, title)
    return [_write(Path(out_dir) / name, text) for name, text in files.items()], notes
