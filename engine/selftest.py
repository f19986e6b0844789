"""`--self-test`: load every shipped model, predict on a demo case, report, exit 0 only if all works."""

from __future__ import annotations

import sys
import time


def run_self_test() -> int:
    import engine.nets  # noqa: F401  (registers every model family before the cards are loaded)
    from engine.cases.bundle import read_bundle
    from engine.paths import demo_cases_dir, models_dir
    from engine.registry import create_model, list_models
    from engine.service import PredictionService

    started = time.perf_counter()
    cards = list_models()
    if not cards:
        print(f"self-test FAILED: no model cards in {models_dir()}", file=sys.stderr)
        return 1
    for card in cards:
        create_model(card.name)  # verifies sha256 and that the weights fit the net
        print(f"ok  model {card.name} ({card.weights['sha256'][:12]})")
    demos = sorted(p for p in demo_cases_dir().glob("*/case.json"))
    if not demos:
        print(f"self-test FAILED: no demo cases in {demo_cases_dir()}", file=sys.stderr)
        return 1
    service = PredictionService(store=None, actor="self-test")
    seen = set()
    for path in demos:  # the first demo case of every kind
        case = read_bundle(path.parent)
        if case.kind in seen:
            continue
        seen.add(case.kind)
        for pred in service.predict_case(case, explain=True):
            if not all(0.0 <= p <= 1.0 for p in pred.probabilities.values()) or not pred.heatmaps:
                print(f"self-test FAILED: bad prediction on {case.id} by {pred.model}: {pred.summary().to_dict()}",
                      file=sys.stderr)
                return 1
            print(f"ok  predict {case.id} {pred.model}: " +
                  ", ".join([f"{k}={v:.3f}" for k, v in pred.probabilities.items()] +
                            [f"{k} mask {int(m.sum())} px" for k, m in pred.masks.items()]) +
                  f" ({pred.timings_ms['total']:.0f} ms)")
    print(f"self-test passed in {time.perf_counter() - started:.1f} s")
    return 0
