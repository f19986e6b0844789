"""The bad-input corpus (tests/engine/bad_inputs.py) through the `oncolens` command: every input gives one
clear error line naming it (exit code 2), or a prediction whose every call is "input not assessable" — never a
traceback, a hang or a confident call from garbage."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from bad_inputs import ERROR, FLAGGED, all_items  # noqa: E402

from engine.cli import main  # noqa: E402

ITEMS = all_items()
SECONDS_PER_INPUT = 60  # generous on a busy 2-core machine; a hang or a decoded bomb takes far longer


def test_the_corpus_is_large_and_covers_every_input_route():
    groups = {item.group for item in ITEMS}
    assert len(ITEMS) >= 150 and groups == {"image", "bundle", "node", "frame", "card", "cli", "study"}
    assert {item.outcome for item in ITEMS} == {ERROR, FLAGGED}
    assert len({(item.group, item.name) for item in ITEMS}) == len(ITEMS)


@pytest.fixture
def study_store(tmp_path):
    """A store with three glioma cases, their FL-CNN results and a study s1 (for the study commands)."""
    from engine.cases.bundle import write_bundle
    from engine.cases.model import Case, GroundTruth
    from engine.data import ImageMeta, Prediction
    from engine.store import Store
    from engine.studies import Study, create_study

    url = f"sqlite:///{tmp_path / 'corpus.sqlite3'}"
    with Store(url) as store:
        ids = []
        for i in range(3):
            case = Case(id=f"corpus-case-{i}", kind="glioma_specimen")
            case.add_image("FL", np.random.default_rng(i).integers(0, 4000, (64, 64)).astype(np.uint16),
                           ImageMeta(16, "counts"))
            case.truth = GroundTruth({"tumor": i % 2})
            store.add_case(case, write_bundle(case, tmp_path / "cases" / case.id))
            prediction = Prediction(family="fl_cnn", variant="FL")
            prediction.set_result("tumor", "tumor", 0.3 + 0.2 * i, 0.5)
            store.add_prediction(case.id, prediction)
            ids.append(case.id)
        create_study(store, Study(id="s1", name="s1", task_label="tumor", case_ids=tuple(ids), modalities=("FL",)))
    (tmp_path / "pin.txt").write_text("246810\n")
    return url


@pytest.mark.parametrize("item", ITEMS, ids=lambda i: f"{i.group}: {i.name}")
def test_bad_input_gives_a_clear_error_or_a_flag(item, tmp_path, capsys, request):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    argv = item.build(inputs)
    if item.group == "study":
        url = request.getfixturevalue("study_store")
        argv = [a.replace("{db}", url).replace("{dir}", str(tmp_path)) for a in argv]
    started = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refusing an option prints its own one-line error
        code = exc.code
    seconds = time.perf_counter() - started
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    assert seconds < SECONDS_PER_INPUT, f"{item.name}: took {seconds:.0f} s"
    if item.outcome == ERROR:
        errors = [line for line in err.splitlines() if "error:" in line]
        assert code == 2, f"{item.name}: exit code {code}, stderr {err[-500:]!r}"
        assert len(errors) == 1, f"{item.name}: expected one error line, got {errors}"
        mention = item.mention or Path(argv[-1]).name
        assert mention in errors[0], f"{item.name}: {errors[0]!r} does not name {mention!r}"
    else:
        assert code == 0, f"{item.name}: exit code {code}, stderr {err[-500:]!r}"
        results = json.loads(out)
        calls = [task for result in results for task in result["tasks"].values()]
        assert calls and all(t["call"].startswith("input not assessable") and t["probability"] is None
                             for t in calls), f"{item.name}: {calls}"
