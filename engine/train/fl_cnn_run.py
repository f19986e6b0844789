"""Runs of FL-CNN as `oncolens train|evaluate fl_cnn` ask for them, from typed settings (engine.cli turns the
arguments into these; no argparse object comes here)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from engine.cases.model import FL, WL
from engine.train.data_source import PhantomOrManifest
from engine.train.fl_cnn import FLCNNTrainSettings, save_trained, train_fl_cnn

Say = Callable[[str], None]
TASKS = ("tumor", "grade", "ki67")


@dataclass(frozen=True)
class SpecimenData(PhantomOrManifest):
    """Phantom specimens (30 patients x 30, seed 2021 by default) or a specimen manifest."""

    seed: int = 2021
    PER_PATIENT_KEY: ClassVar[str] = "specimens_per_patient"


def specimen_records(data: SpecimenData):
    """(records, description for the card)."""
    from engine.train.specimen_data import load_manifest, phantom_records

    if data.source == "phantom":
        return (phantom_records(data.patients, data.per_patient, data.seed),
                data.describe("engine.phantoms.glioma.make_glioma_dataset", "specimens"))
    return load_manifest(data.source), {"kind": "manifest", "path": str(data.source)}


@dataclass(frozen=True)
class FLCNNTrainRun:
    """`oncolens train fl_cnn`: which nets (modalities x tasks), on what data, written where."""

    base: FLCNNTrainSettings  # modality and task are set per net
    modalities: tuple[str, ...] = (FL, WL)
    tasks: tuple[str, ...] = TASKS
    data: SpecimenData = SpecimenData()
    models_root: Path | None = None
    command: str = ""


def train_fl_cnn_nets(run: FLCNNTrainRun, say: Say) -> int:
    """Train the requested nets on one patient split (the cascade's), evaluate each cascade end to end on its
    test patients, and install the cards."""
    import torch

    from engine.train.fl_cnn_cascade import cascade_split

    torch.set_num_threads(int(os.environ.get("ONCOLENS_TRAIN_THREADS", max(1, os.cpu_count() or 1))))
    records, description = specimen_records(run.data)
    split = cascade_split(records, run.base.test_fraction, run.base.val_fraction, run.base.seed)
    say(f"cascade split (seed {split.seed}): {len(split.fit)} training, {len(split.validation)} validation, "
        f"{len(split.test)} test patients, shared by every net")
    for modality in run.modalities:
        trained = {}
        for task in run.tasks:
            settings = replace(run.base, modality=modality, task=task)
            trained[task] = (settings, train_fl_cnn(records, settings, progress=say, split=split))
        cascade = trained_cascade(trained, modality, records, split, description, run, say)
        for settings, outcome in trained.values():
            card = save_trained(settings, outcome, description, run.command, run.models_root, cascade)
            auc = outcome.evaluation.to_dict()["metrics"]["auc"]
            say(f"{card.name}: test AUC {auc['value']:.3f} [{auc['ci_low']:.3f}, {auc['ci_high']:.3f}], "
                f"threshold {outcome.threshold:.3f}, {outcome.seconds:.0f} s -> {card.folder}")
    return 0


def cascade_title(modality: str, evaluation, what: str = "shared test patients") -> str:
    return (f"{modality}-CNN cascade end to end on the {evaluation.n_patients} {what} ({evaluation.n_specimens} "
            "specimens): CNN2 (grade) and CNN3 (Ki-67) answer only for CNN1's tumor calls, as the app gates them; "
            "end to end, a tumor CNN1 missed counts as not correct. Wilson 95% CIs, correct/total.")


def trained_cascade(trained: dict, modality: str, records, split, description: dict, run: FLCNNTrainRun,
                    say: Say) -> dict | None:
    """The end-to-end evaluation of the cascade of `modality`: the nets just trained, and the installed ones of
    the other tasks when they were trained on the same split (else None, said)."""
    from engine.predict.glioma import GliomaCascadePredictor, card_name
    from engine.registry import ModelError, create_model
    from engine.train.fl_cnn import build_card
    from engine.train.fl_cnn_cascade import evaluate_cascade

    nets = {}
    for task in TASKS:
        if task in trained:
            settings, outcome = trained[task]
            nets[task] = (outcome.net, build_card(settings, outcome, description, run.command, run.models_root))
            continue
        try:
            net, card = create_model(card_name(modality, task), root=run.models_root)
        except ModelError as exc:
            say(f"{modality} cascade not evaluated end to end: {exc}")
            return None
        if sorted(card.training.get("test_patients", [])) != sorted(split.test):
            say(f"{modality} cascade not evaluated end to end: the installed {card.name} was trained on another "
                "patient split; retrain it with the others.")
            return None
        nets[task] = (net, card)
    evaluation = evaluate_cascade(GliomaCascadePredictor(modality, device="cpu", nets=nets), records, split.test)
    say(f"{modality} cascade on the shared test patients:\n{evaluation.markdown()}")
    return evaluation.card_entry(cascade_title(modality, evaluation))


@dataclass(frozen=True)
class FLCNNEvaluation:
    """`oncolens evaluate fl_cnn`: the installed cascades on their test split, or on all of a manifest."""

    out: Path
    modalities: tuple[str, ...] = (FL, WL)
    data: SpecimenData | None = None  # None: the phantom the cards were trained on
    split: str = "test"
    n_bootstrap: int = 1000
    models_root: Path | None = None


def evaluate_fl_cnn_nets(ev: FLCNNEvaluation, say: Say) -> int:
    from engine.predict.glioma import card_name
    from engine.registry import load_card
    from engine.train.evaluate_fl_cnn import evaluate_cascade_end_to_end, evaluate_fl_cnn

    for modality in ev.modalities:
        data = ev.data or SpecimenData.of_card(load_card(card_name(modality, "tumor"), ev.models_root))
        records, _ = specimen_records(data)
        evaluations = evaluate_fl_cnn(records, modality, ev.out, split=ev.split, n_bootstrap=ev.n_bootstrap,
                                      root=ev.models_root)
        print(format_table(evaluations))
        cascade, seen = evaluate_cascade_end_to_end(records, modality, ev.out, ev.split, ev.models_root)
        print(cascade_title(modality, cascade, "test patients of the tumor net" if ev.split == "test" else "patients"))
        print(cascade.markdown())
        if any(seen.values()):
            print("Not a clean test: of these patients the nets were trained or validated on "
                  + ", ".join(f"{task} {n}" for task, n in seen.items()) + " (nets split separately; retrain them "
                  "together so the cascade shares one split).")
    say(f"wrote CSV, JSON and ROC PNG to {ev.out}/")
    return 0


def format_table(evaluations: dict) -> str:
    metrics = ["auc", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1"]
    lines = [f"{'model':<18} {'n':>4} " + " ".join(f"{m:>21}" for m in metrics)]
    for name, ev in evaluations.items():
        d = ev.to_dict()
        cells = []
        for m in metrics:
            e = d["metrics"][m]
            cells.append("n/a".rjust(21) if e["value"] is None
                         else f"{e['value']:.3f} [{e['ci_low']:.3f},{e['ci_high']:.3f}]".rjust(21))
        lines.append(f"{name:<18} {d['n']:>4} " + " ".join(cells))
    if evaluations:
        lines.append(next(iter(evaluations.values())).ci_description())
    return "\n".join(lines)
