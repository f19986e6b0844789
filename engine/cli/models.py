"""`oncolens models`: the installed model cards, one line each."""

from __future__ import annotations

import argparse

from engine.cli.common import Context, add_models_dir, models_root


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the installed model cards (and whether their weights are phantom-trained)")
    add_models_dir(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from engine.paths import models_dir
    from engine.registry import list_models

    root = models_root(args)
    cards = list_models(root)
    if not cards:
        raise ValueError(f"No model cards in {root or models_dir()}; name the folder that holds them (--models-dir) "
                         "or reinstall OncoLens.")
    print(f"{'name':<26} {'family':<10} {'input':<12} {'threshold':>9}  {'weights':>9}  {'trained on':<10} "
          f"sha256        task")
    for c in cards:
        threshold = next(iter(c.thresholds.values())).value
        data = (c.training.get("data") or {}).get("kind", "?")
        print(f"{c.name:<26} {c.family:<10} {'+'.join(c.input.modalities):<12} {threshold:>9.3f}"
              f"  {c.weights.get('bytes', 0) / 1e6:>7.2f}MB  {data:<10} {c.weights['sha256'][:12]}  {c.task}")
    if all((c.training.get("data") or {}).get("kind") == "phantom" for c in cards):
        print("\nEvery model above was trained on synthetic phantom data (demo weights), not on patient data.")
    print(f"\n{cards[0].intended_use}")
    return 0
