"""Every MRMC tool reads the file written for it: each export is parsed back with a re-implementation of that
tool's own parser (tests/engine/mrmc_tool_parsers.py) and must give back the truth and every score."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from mrmc_tool_parsers import ToolRefused, parse_imrmc_java, parse_imrmc_r, parse_rjafroc_imrmc

from engine.metrics.mrmc import or_hillis, or_hillis_fixed_reference
from engine.metrics.mrmc_export import (
    imrmc_title,
    long_format_rows,
    mrmc_tool_files,
    write_imrmc,
    write_imrmc_r,
    write_mrmc_tool_files,
    write_rjafroc_imrmc,
)

TITLE = "OncoLens reader study s1: Glioma margins"


def study(readers=("r1", "r2", "r3"), cases=None, n=10, seed=0):
    """Long-format rows of a small study: two arms read by every reader, and the model."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n // 2, int), np.ones(n - n // 2, int)]
    cases = cases or [f"case-{k:02d}" for k in range(n)]
    readings = {arm: {r: np.clip(np.round(2.5 + 1.5 * y + rng.normal(size=n)), 1, 5) for r in readers}
                for arm in ("unaided", "aided")}
    readings["model"] = {"model": np.round(rng.random(n) * 0.8 + 0.2 * y, 6)}
    readings["model"]["model"][0] = 1e-05  # exponent notation must survive every parser
    return y, cases, readings, long_format_rows(y, readings, cases)


def expected_scores(cases, readings):
    return {(r, c, m): float(v) for m, rs in readings.items() for r, s in rs.items() for c, v in zip(cases, s)}


def rjafroc_back(parsed, ids_csv):
    """RJafroc's parsed scores in OncoLens ids, via the mapping CSV."""
    with open(ids_csv, newline="", encoding="utf-8") as handle:
        mapping = {(row["kind"], row["rjafroc_id"]): row["oncolens_id"] for row in csv.DictReader(handle)}
    truth = {mapping[("case", c)]: t for c, t in parsed.truth.items()}
    scores = {(mapping[("reader", r)], mapping[("case", c)], m): v for (r, c, m), v in parsed.scores.items()}
    return truth, scores


def test_each_tool_reads_back_the_file_written_for_it(tmp_path):
    y, cases, readings, rows = study()
    paths, notes = write_mrmc_tool_files(tmp_path, "st", rows, TITLE)
    assert [p.name for p in paths] == ["st.imrmc", "st_imrmc_R.imrmc", "st_rjafroc.imrmc", "st_rjafroc_ids.csv"]
    assert notes == []
    truth = dict(zip(cases, y.tolist()))
    scores = expected_scores(cases, readings)

    java = parse_imrmc_java(tmp_path / "st.imrmc")
    assert (java.truth, java.scores) == (truth, scores)
    assert java.header == {"N0": 5, "N1": 5, "NR": 4, "NM": 3} and java.warnings == [] and java.dropped == []
    assert java.title == "OncoLens reader study s1 - Glioma margins"

    r = parse_imrmc_r(tmp_path / "st_imrmc_R.imrmc")
    assert (r.truth, r.scores) == (truth, scores)

    jafroc = parse_rjafroc_imrmc(tmp_path / "st_rjafroc.imrmc")
    assert jafroc.header == {"N0": 5, "N1": 5, "NR": 3, "NM": 3}
    back_truth, back_scores = rjafroc_back(jafroc, tmp_path / "st_rjafroc_ids.csv")
    assert back_truth == truth
    model = {(r, c, "model"): v for (_, c, m), v in scores.items() if m == "model" for r in ("r1", "r2", "r3")}
    assert back_scores == {k: v for k, v in scores.items() if k[2] != "model"} | model


def old_export(path, rows, title):
    """What earlier versions wrote: `<study>_imrmc.txt`, truth reader "-1", string case ids, the model alone in
    its modality."""
    lines = [title, "N0:5", "N1:5", "NR:4", "NM:3", "BEGIN DATA:"]
    lines += [",".join(["-1" if r["readerID"] == "truth" else r["readerID"], r["caseID"], r["modalityID"],
                        r["score"]]) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_earlier_export_is_refused_by_every_tool(tmp_path):
    _, _, _, rows = study()
    txt = old_export(tmp_path / "s1_imrmc.txt", rows, "OncoLens reader study s1: demo")
    for parse in (parse_imrmc_java, parse_rjafroc_imrmc):
        with pytest.raises(ToolRefused, match="imrmc"):
            parse(txt)
    with pytest.raises(ToolRefused, match="no truth reader"):
        parse_imrmc_r(txt)
    renamed = txt.rename(tmp_path / "s1.imrmc")
    with pytest.raises(ToolRefused, match="Case IDs must be integers"):
        parse_rjafroc_imrmc(renamed)
    assert parse_imrmc_java(renamed).scores  # the Java app itself takes "-1" once the extension is right
    numbered = [{**r, "caseID": str(k % 10)} for k, r in enumerate(rows)]
    with pytest.raises(ToolRefused, match="reader"):  # integer case ids still leave "model" and "r1" as readers
        parse_rjafroc_imrmc(old_export(tmp_path / "n.imrmc", numbered, "x study"))
    with pytest.raises(ValueError, match=r"must end in \.imrmc"):
        write_imrmc(tmp_path / "s1_imrmc.txt", rows, "x")


@pytest.mark.parametrize("title", [
    "Study\nBEGIN DATA:\nN0:5",
    "BEGIN DATA: the margins study",
    "begin data:",
    "Screen1: NR: reread, n0: 4",
    "NM",
    "X",
    "",
    "Tabs\tand\r\nCRLF,, and trailing commas,,",
])
def test_titles_cannot_break_any_header_parser(tmp_path, title):
    y, cases, readings, rows = study()
    write_mrmc_tool_files(tmp_path, "st", rows, title)
    java = parse_imrmc_java(tmp_path / "st.imrmc")
    r = parse_imrmc_r(tmp_path / "st_imrmc_R.imrmc")
    jafroc = parse_rjafroc_imrmc(tmp_path / "st_rjafroc.imrmc")
    assert java.header == {"N0": 5, "N1": 5, "NR": 4, "NM": 3} and java.warnings == []
    assert java.scores == r.scores == expected_scores(cases, readings)
    assert jafroc.header["NR"] == 3 and len(jafroc.scores) == 3 * 3 * 10
    title_line = imrmc_title(title)
    assert "\n" not in title_line and ":" not in title_line and len(title_line) >= 3
    assert (tmp_path / "st.imrmc").read_text().splitlines()[0] == title_line


def test_ids_with_commas_whitespace_and_quotes(tmp_path):
    readers = ("Smith, J", "Dr Lee", 'O"Neil')
    cases = ["case 1", "case,2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10"]
    y, cases, readings, rows = study(readers=readers, cases=cases)
    with pytest.raises(ValueError, match="cannot read the ids") as refused:
        write_imrmc(tmp_path / "st.imrmc", rows, TITLE)
    assert "Smith, J" in str(refused.value) and "case 1" in str(refused.value)

    r = parse_imrmc_r(write_imrmc_r(tmp_path / "st_imrmc_R.imrmc", rows, TITLE))
    assert r.scores == expected_scores(cases, readings)  # quoted, read back exactly

    jafroc, ids = write_rjafroc_imrmc(tmp_path / "st_rjafroc.imrmc", rows, TITLE)
    back_truth, back_scores = rjafroc_back(parse_rjafroc_imrmc(jafroc), ids)
    assert back_truth == dict(zip(cases, y.tolist()))
    assert {k for k in back_scores if k[2] == "aided"} == {(rd, c, "aided") for rd in readers for c in cases}

    files, notes = mrmc_tool_files("st", rows, TITLE)
    assert set(files) == {"st_imrmc_R.imrmc", "st_rjafroc.imrmc", "st_rjafroc_ids.csv"}
    assert len(notes) == 1 and notes[0].startswith("st.imrmc not written: the iMRMC Java app cannot read")


def test_ids_the_r_package_would_misread_are_refused(tmp_path):
    _, _, _, rows = study(readers=("NA", "r2"))
    with pytest.raises(ValueError, match="NA"):
        write_imrmc_r(tmp_path / "x.imrmc", rows, TITLE)


def test_too_few_cases_of_a_class_for_the_java_app_is_noted(tmp_path):
    y, cases, readings, rows = study(n=4)  # 2 negative, 2 positive
    _, notes = write_mrmc_tool_files(tmp_path, "st", rows, TITLE)
    assert any("fewer than 3" in n for n in notes)
    java = parse_imrmc_java(tmp_path / "st.imrmc")
    assert java.scores == {} and len(java.dropped) == 7  # every reader in every modality left out


def test_rjafroc_needs_a_fully_crossed_design(tmp_path):
    y, cases, readings, rows = study()
    rows = [r for r in rows if not (r["readerID"] == "r3" and r["modalityID"] == "aided")]
    with pytest.raises(ValueError, match="r3 in aided"):
        write_rjafroc_imrmc(tmp_path / "x.imrmc", rows, TITLE)


def test_the_rjafroc_file_gives_the_model_vs_readers_analysis(tmp_path):
    """The model copied to every reader: a two-treatment OR analysis of RJafroc's data equals OncoLens'
    fixed-reference analysis of model against readers (see test_mrmc for the identity)."""
    y, cases, readings, rows = study(n=40, seed=3)
    jafroc, ids = write_rjafroc_imrmc(tmp_path / "x.imrmc", rows, TITLE)
    truth, scores = rjafroc_back(parse_rjafroc_imrmc(jafroc), ids)
    readers = ("r1", "r2", "r3")
    grid = np.array([[[scores[(r, c, m)] for c in cases] for r in readers] for m in ("model", "unaided")])
    crossed = or_hillis([truth[c] for c in cases], grid, treatment_ids=("model", "unaided"))
    fixed = or_hillis_fixed_reference(y, np.array([readings["unaided"][r] for r in readers]),
                                      reference_scores=readings["model"]["model"])
    assert (crossed.f_stat, crossed.ddf, crossed.p_value) == pytest.approx((fixed.f_stat, fixed.ddf, fixed.p_value))
