"""A simulated reader study, for benchmarks and a sample report: synthetic cases, a model and readers whose
answers go through the real reading path (`ReadingSession.answer`, one transaction each) into a real store.

Simulation model (binormal, as in MRMC simulation studies such as Roe and Metz 1997): each case has a latent
difficulty; the model's score and each reader's rating are the truth shifted by a reader-specific separation
plus case and reader-by-case noise. Aided readers see the model and move part of the way toward it. The
reads are simulated; nothing here is a clinical result, and the report says so in its notes.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.cases.bundle import write_bundle
from engine.cases.model import Case, GroundTruth
from engine.data import ImageMeta, Prediction
from engine.store import Store
from engine.studies.model import AIDED, UNAIDED, Study, create_study
from engine.studies.readers import add_reader
from engine.studies.session import ReadingSession

SIMULATED_MODEL = "simulated model"
SIMULATION_NOTE = ("Simulated study: the cases, the model and every read are drawn by engine.studies.simulate "
                   "(binormal reader model); no clinician read anything.")


def _case(case_id: str, label: int, rng: np.random.Generator) -> Case:
    case = Case(id=case_id, kind="lymph_node", notes="simulated case")
    for modality in ("WLI", "PCI"):
        case.add_image(modality, rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), ImageMeta(bit_depth=8))
    case.add_image("FI", rng.integers(0, 255, (16, 16), dtype=np.uint8), ImageMeta(bit_depth=8))
    case.truth = GroundTruth(labels={"metastatic": label}, source="simulation")
    return case


def simulate_study(store: Store, root: str | Path, n_readers: int = 10, n_cases: int = 300, *, seed: int = 0,
                   prevalence: float = 0.3, arms: tuple[str, ...] = (UNAIDED, AIDED),
                   study_id: str = "simulated") -> dict[str, float]:
    """Create the cases, the study and the readers, read every arm; returns seconds per phase."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    labels = (rng.random(n_cases) < prevalence).astype(int)
    labels[:2], labels[2:4] = 1, 0  # both classes whatever the draw
    difficulty = rng.normal(0, 0.6, n_cases)
    model_latent = 1.6 * labels + difficulty + rng.normal(0, 0.8, n_cases)
    model_scores = 1 / (1 + np.exp(-(model_latent - 0.8)))
    ids = []
    for i in range(n_cases):
        case = _case(f"sim-{i:04d}", int(labels[i]), rng)
        p = float(model_scores[i])
        prediction = Prediction(family=SIMULATED_MODEL)
        prediction.set_result("metastatic", "metastatic" if p >= 0.5 else "benign", p, 0.5)
        case.predictions.append(prediction)
        store.add_case(case, write_bundle(case, root / case.id))
        store.add_prediction(case.id, prediction)
        ids.append(case.id)
    create_study(store, Study(id=study_id, name=f"Simulated study: {n_readers} readers, {n_cases} cases",
                              task_label="metastatic", case_ids=tuple(ids), modalities=("WLI", "FI", "PCI"),
                              arms=arms, seed=seed, description=SIMULATION_NOTE))
    readers = [f"reader-{r + 1:02d}" for r in range(n_readers)]
    for reader in readers:
        add_reader(store, study_id, reader, reader.replace("-", " ").title(), f"pin-{reader}")
    timings["set-up (cases, study, readers)"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    n_answers = 0
    skill = rng.uniform(1.0, 1.8, n_readers)
    for r, reader in enumerate(readers):
        noise = rng.normal(0, 0.9, n_cases)
        for arm in arms:
            latent = skill[r] * labels + difficulty + noise
            if arm == AIDED:
                latent = 0.6 * latent + 0.4 * model_latent
            ratings = np.clip(np.round(3 + (latent - 0.8) * 1.2), 1, 5).astype(int)
            session = ReadingSession.open(store, study_id, reader, f"pin-{reader}")
            index = {c: k for k, c in enumerate(ids)}
            case = session.current_case()
            while case is not None:
                rating = int(ratings[index[case.case_id]])
                positive = rating > 3 or (rating == 3 and latent[index[case.case_id]] > 0.8)
                session.answer(positive, rating)
                n_answers += 1
                case = session.next()
    elapsed = time.perf_counter() - t0
    timings["reading (every answer saved)"] = elapsed
    timings["answers"] = float(n_answers)
    return timings


@dataclass(frozen=True)
class StudyBench:
    """`oncolens bench study`: the simulated study's size and statistics settings; `out` keeps its outputs."""

    readers: int = 10
    cases: int = 300
    n_boot: int = 1000
    n_perm: int = 10000
    seed: int = 0
    out: Path | None = None


def bench_study(bench: StudyBench, say: Callable[[str], None] = print) -> int:
    """Time the analysis of a simulated study (default 10 readers x 300 cases, both arms) on a fresh SQLite
    store, phase by phase."""
    from engine.studies.analysis import analyze_study
    from engine.studies.report import write_report

    n_readers, n_cases = bench.readers, bench.cases
    with tempfile.TemporaryDirectory(prefix="oncolens-bench-study-") as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            timings = simulate_study(store, Path(tmp) / "cases", n_readers, n_cases, seed=bench.seed)
            t0 = time.perf_counter()
            analysis = analyze_study(store, "simulated", n_boot=bench.n_boot, n_perm=bench.n_perm)
            timings["analysis (bootstrap, permutations, MRMC)"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = bench.out or Path(tmp) / "out"
            paths = analysis.write(out)
            report = write_report(analysis, out / "study_simulated_report.html")
            timings["tables and HTML report"] = time.perf_counter() - t0
        finally:
            store.close()
        answers = int(timings.pop("answers"))
        say(f"Simulated reader study: {n_readers} readers x {n_cases} cases x 2 arms ({answers} answers), "
            f"{analysis.settings['n_boot']} bootstrap resamples, {analysis.settings['n_perm']} permutations")
        say(SIMULATION_NOTE)
        say(f"{'phase':<44} {'seconds':>9}")
        for phase, seconds in timings.items():
            say(f"{phase:<44} {seconds:>9.2f}")
        reading = timings["reading (every answer saved)"]
        say(f"{'per saved answer (ms)':<44} {1000 * reading / max(answers, 1):>9.2f}")
        mrmc = analysis.result.mrmc
        for key, res in mrmc.items():
            for c in res.comparisons:
                if math.isfinite(c.p_value):
                    say(f"MRMC {key}: {c.label} = {c.estimate:.3f} [{c.ci_low:.3f}, {c.ci_high:.3f}], "
                        f"df {c.df:.1f}, p {c.p_value:.3g}")
                else:
                    say(f"MRMC {key}: {c.label} = {c.estimate:.3f} (no variance estimate: p not defined)")
        if bench.out:
            say(f"wrote {len(paths)} tables and {report}")
    return 0
