"""The input-file parsers of three MRMC tools, re-implemented in Python from reading their source, so that the
tests can read OncoLens' exports the way each tool does. Written from these versions:

- iMRMC Java app: github.com/DIDSR/iMRMC, src/mrmc/core/InputFile.java (ReadInputFile,
  getExperimentSizeFromHeader, parseObserverData, verifySizesAndGetIDs, processScoresAndTruth), commit ad589e5.
- iMRMC R package 2.1.2: same repository, Rpackage/iMRMC/R/doAUCMRMC.R (`doAUCmrmc`, which `doIMRMC` calls;
  given a file name it finds "BEGIN DATA:" with grep and reads the rest with read.csv).
- RJafroc: github.com/dpc10ster/RJafroc, R/DfReadIowaFormats.R (`ReadImrmc`, called by
  `DfReadDataFile(format = "iMRMC")`), commit 44b0e39e.

Each parser returns the truth and the scores it would analyse, or raises ToolRefused where the tool stops with
an error (or, for RJafroc, would never stop: it loops forever when a header key is missing). Only the parsing
and input checks are modelled, not the statistics.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path


class ToolRefused(Exception):
    """The tool stops on this file (the message says where, in the tool's terms)."""


@dataclass
class Parsed:
    title: str
    truth: dict[str, int]  # case -> 0/1
    scores: dict[tuple[str, str, str], float]  # (reader, case, modality) -> score
    header: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (modality, reader) the tool leaves out


def _lines(path: Path) -> list[str]:
    """Lines as Java's BufferedReader.readLine and R's readLines give them (\\n, \\r\\n or \\r end a line)."""
    return path.read_text(encoding="utf-8").splitlines()


# ----------------------------------------------------------------------------------------------------
# iMRMC Java app

_JAVA_INT = re.compile(r"[+-]?\d+")
_JAVA_DOUBLE = re.compile(r"[+-]?(NaN|Infinity|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)[fFdD]?")
_JAVA_WS = re.compile(r"[ \t\n\x0b\f\r]")


def _java_split(line: str) -> list[str]:
    """String.split(","): trailing empty strings are removed."""
    parts = line.split(",")
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def parse_imrmc_java(path: str | Path) -> Parsed:
    path = Path(path)
    extension = path.name[path.name.rfind(".") + 1:]
    if extension not in ("csv", "imrmc", "omrmc"):
        raise ToolRefused("Please choose .imrmc, .omrmc or .csv format inputfile.")
    content = []
    for line in _lines(path):
        if len(line) == 1:  # line.substring(length - 2) throws; the reading loop stops there
            raise ToolRefused("read record Error in inputFile.java (a one-character line)")
        if line.endswith(",,"):
            line = line[:line.index(",,")]
        if line.endswith(","):
            line = line[:-1]
        content.append(line)

    header: dict[str, float] = {}
    position = 0
    start = content[0].upper().find("BEGIN DATA:")
    while start != 0:
        upper = content[position].upper()
        for key in ("N0:", "N1:", "NR:", "NM:"):
            if key in upper:
                value = upper[3:].strip()
                if not _JAVA_INT.fullmatch(value):
                    raise ToolRefused(f"Found {key} Text following is not an integer: {content[position]!r}")
                header[key[:2]] = int(value)
        position += 1
        if position >= len(content):
            raise ToolRefused("ERROR: Can't find BEGIN DATA")
        start = content[position].upper().find("BEGIN DATA:")

    rows = []
    for line in content[position + 1:]:
        fields = _java_split(line)
        if len(fields) < 4:
            raise ToolRefused(f"ERROR: Invalid input row {line!r}")
        rows.append([_JAVA_WS.sub("", f) for f in fields[:4]])

    normal, disease = [], []
    for reader, case, _, score in rows:
        if reader in ("truth", "-1"):
            if case in normal or case in disease:
                raise ToolRefused(f"ERROR: Duplicate case found: {case}")
            if score == "0":
                normal.append(case)
            if score == "1":
                disease.append(case)
    counts: dict[tuple[str, str], list[int]] = {}
    for reader, case, modality, _ in rows:
        if reader in ("truth", "-1"):
            continue
        if case not in normal and case not in disease:
            raise ToolRefused(f"ERROR: No truth for case {case}")
        tally = counts.setdefault((modality, reader), [0, 0])
        tally[0 if case in normal else 1] += 1
    warnings = []
    found = {"NR": len({r for _, r in counts}), "N0": len(normal), "N1": len(disease),
             "NM": len({m for m, _ in counts})}
    for key, value in found.items():
        if header.get(key, 0) != value:
            warnings.append(f"{key} Given = {header.get(key, 0)} {key} Found = {value}")

    truth: dict[str, int] = {}
    scores: dict[tuple[str, str, str], float] = {}
    seen = set()
    for reader, case, modality, score in rows:
        if not _JAVA_DOUBLE.fullmatch(score):
            raise ToolRefused(f"NumberFormatException: {score!r}")
        if reader in ("truth", "-1"):
            if not _JAVA_INT.fullmatch(score):
                raise ToolRefused(f"NumberFormatException (truth must be an integer): {score!r}")
            truth[case] = int(score)
            continue
        if (reader, case, modality) in seen:
            raise ToolRefused(f"ERROR: Replicate observation found: {reader}, {case}, {modality}")
        seen.add((reader, case, modality))
        if min(counts[(modality, reader)]) > 2:
            scores[(reader, case, modality)] = float(score.rstrip("fFdD"))
    dropped = sorted(key for key, tally in counts.items() if min(tally) <= 2)
    return Parsed(content[0], truth, scores, header, warnings, dropped)


# ----------------------------------------------------------------------------------------------------
# iMRMC R package (doIMRMC / doAUCmrmc with a file name)

_R_NUMBER = re.compile(r"\s*[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|0[xX][0-9a-fA-F]+|Inf|NaN)\s*")


def parse_imrmc_r(path: str | Path) -> Parsed:
    lines = _lines(Path(path))
    begin = [i for i, line in enumerate(lines) if "BEGIN DATA:" in line]
    if len(begin) != 1:
        # grep() gives integer(0) or several indices; read.csv(skip = ...) then fails on `if (skip > 0L)`
        raise ToolRefused(f"read.csv: invalid 'skip' ({len(begin)} lines contain BEGIN DATA:)")
    rows = []
    for fields in csv.reader(lines[begin[0] + 1:], delimiter=",", quotechar='"', doublequote=True):
        if not fields or fields == [""]:
            continue  # blank.lines.skip
        if len(fields) > 4:
            raise ToolRefused("read.table: more columns than column names")
        fields = fields + [""] * (4 - len(fields))  # fill = TRUE
        if not _R_NUMBER.fullmatch(fields[3]):
            raise ToolRefused(f"scan() expected 'a real', got {fields[3]!r}")
        rows.append([None if f == "NA" else f for f in fields[:3]] + [float(fields[3].strip())])
    keys = [tuple(r[:3]) for r in rows]
    if len(set(keys)) != len(keys):
        raise ToolRefused("Some readers have read a case more than once in some modality.")
    modalities = {m.strip() for _, _, m, _ in rows if m is not None}
    readers = {r.strip() for r, _, _, _ in rows if r is not None}
    if "truth" not in modalities:
        raise ToolRefused("There is no truth modality.")
    if "truth" not in readers:
        raise ToolRefused("There is no truth reader")
    truth_rows = [r for r in rows if r[2] == "truth"]
    reads = [r for r in rows if r[2] != "truth"]
    truth_cases = {c for _, c, _, _ in truth_rows}
    if any(c not in truth_cases for _, c, _, _ in reads):
        raise ToolRefused("Not all cases have truth")
    positive = {c for _, c, _, s in truth_rows if s == 1}
    truth = {c: int(c in positive) for _, c, _, _ in truth_rows}  # any score but 1 counts as negative
    scores = {(r, c, m): s for r, c, m, s in reads}
    return Parsed(lines[0], truth, scores)


# ----------------------------------------------------------------------------------------------------
# RJafroc ReadImrmc


def _r_strsplit(text: str, sep: str) -> list[str]:
    """strsplit(x, sep, fixed = TRUE): one trailing empty piece is dropped; "" gives no piece."""
    parts = text.split(sep)
    return parts[:-1] if parts and parts[-1] == "" else parts


def _r_numeric(text: str) -> float | None:
    """as.numeric() of a string; None for NA."""
    if not _R_NUMBER.fullmatch(text):
        return None
    text = text.strip()
    return float.fromhex(text) if text.lower().lstrip("+-").startswith("0x") else float(text)


def parse_rjafroc_imrmc(path: str | Path) -> Parsed:
    path = Path(path)
    match = re.search(r"\.([A-Za-z0-9]+)$", path.name)
    if (match.group(1) if match else "") != "imrmc":
        raise ToolRefused("The extension of iMRMC file name must be *.imrmc")
    lines = [line.strip() for line in _lines(path)]

    def line(i: int) -> str | None:
        return lines[i] if i < len(lines) else None

    header: dict[str, float | None] = {}
    i = 0
    for _ in range(4):
        while True:
            text = line(i)
            if text is None:
                raise ToolRefused("header key not found: ReadImrmc loops forever past the end of the file")
            tokens = _r_strsplit(text, ":")
            if tokens and tokens[0] in ("N0", "N1", "NR", "NM"):
                break
            i += 1
        header[tokens[0]] = _r_numeric(tokens[1]) if len(tokens) > 1 else None
        i += 1
    if set(header) != {"N0", "N1", "NR", "NM"} or any(v is None for v in header.values()):
        raise ToolRefused(f"object not found / NA in the study description: {header}")
    while line(i) != "BEGIN DATA:":
        if line(i) is None:
            raise ToolRefused("missing value where TRUE/FALSE needed (no line 'BEGIN DATA:')")
        i += 1
    i += 1
    while line(i) == "":
        i += 1
    table = []
    while line(i) is not None and len(tokens := _r_strsplit(line(i), ",")) == 4:
        table.append(tokens)
        i += 1

    if any(_r_numeric(t[1]) is None for t in table):
        raise ToolRefused("Case IDs must be integers.")
    if any(_r_numeric(t[3]) is None for t in table):
        raise ToolRefused("Ratings must be numeric.")
    case_ids = list(dict.fromkeys(_r_numeric(t[1]) for t in table))
    if len(case_ids) != header["N0"] + header["N1"]:
        raise ToolRefused("The number of cases in the dataset is different from the number in the study description.")
    if any(_r_numeric(t[0]) is None for t in table):
        raise ToolRefused("non-numeric reader ID: the truth table picks up NA rows (Cases' truth states must be 0 "
                          "or 1) and the reader list loses it")
    truth_rows = [t for t in table if _r_numeric(t[0]) == -1]
    truth_cases = {_r_numeric(t[1]) for t in truth_rows}
    missing = [c for c in case_ids if c not in truth_cases]
    if missing:
        raise ToolRefused(f"Case {missing[0]:g} cannot be found in rows recording truth states.")
    if any(_r_numeric(t[3]) not in (0.0, 1.0) for t in truth_rows):
        raise ToolRefused("Cases' truth states must be 0 or 1.")
    normal = list(dict.fromkeys(_r_numeric(t[1]) for t in truth_rows if _r_numeric(t[3]) == 0))
    abnormal = list(dict.fromkeys(_r_numeric(t[1]) for t in truth_rows if _r_numeric(t[3]) == 1))
    if (len(normal), len(abnormal)) != (header["N0"], header["N1"]):
        raise ToolRefused("N0/N1 of the study description do not match the truth rows (subscript out of bounds)")
    reads = [t for t in table if _r_numeric(t[0]) != -1]
    # readerID <- as.character(sort(as.integer(unique(...)))): reads match only when written as plain integers
    readers = sorted({int(_r_numeric(t[0])) for t in reads})
    if any(t[0] != str(int(_r_numeric(t[0]))) for t in reads):
        raise ToolRefused("replacement has length zero (a reader ID is not written as a plain integer)")
    if header["NR"] != len(readers):
        raise ToolRefused("The number of readers in the dataset is different from the number in the study "
                          "description.")
    modalities = sorted({t[2] for t in reads})
    if header["NM"] != len(modalities):
        raise ToolRefused("The number of treatments in the dataset is different from the number in the study "
                          "description.")
    by_key: dict[tuple[str, float, str], list[float]] = {}
    for t in reads:
        by_key.setdefault((t[0], _r_numeric(t[1]), t[2]), []).append(_r_numeric(t[3]))
    scores: dict[tuple[str, str, str], float] = {}
    for modality in modalities:
        for reader in map(str, readers):
            for case in normal + abnormal:
                found = by_key.get((reader, case, modality), [])
                if len(found) != 1:
                    raise ToolRefused(f"reader {reader}, case {case:g}, modality {modality}: {len(found)} ratings "
                                      "(the design must be fully crossed, one rating each)")
                scores[(reader, f"{case:g}", modality)] = found[0]
    truth = {f"{c:g}": 0 for c in normal} | {f"{c:g}": 1 for c in abnormal}
    return Parsed(lines[0], truth, scores, {k: float(v) for k, v in header.items()})
