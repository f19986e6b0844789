"""A calibrated frame-level score for the fluorescence segmentation nets: "is there tumor in this frame?".

The highest pixel probability is 1.0 whenever any pixel is confident (a vessel or a glare spot is enough), so it
says little about the frame. Instead a logistic model of two features of the net's probability map, fitted on
phantom frames with and without tumor, gives P(tumor in the frame):

    logit P = b0 + b1 * logit(max pixel) + b2 * logit(mean of the top 1 % pixel probabilities)
              + b3 * log10(predicted area fraction + 1e-4)

`fit_frame_score` fits it on one set of phantom frames and measures it against the old max-pixel score on
another (AUC and Brier score); `write_frame_score` keeps the coefficients and the description of the data in the
net's model card (`extra.frame_score`), which `FluoroSegPredictor` reads.

    python -m engine.train.fluoro_frame_score --arch unetplusplus --write
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from engine.metrics.classification import auc
from engine.phantoms.fluoro_frames import make_frame
from engine.predict.frame_score import FrameScore, frame_features

DATASETS = ("A", "B", "C")


@dataclass(frozen=True)
class FrameScoreFit:
    """The fitted score and how it compares with the max-pixel score on held-out frames."""

    score: FrameScore
    arch: str
    fit_frames: int
    test_frames: int
    size: int
    fit_seed: int
    test_seed: int
    auc_calibrated: float
    auc_max_pixel: float
    brier_calibrated: float
    brier_max_pixel: float
    seconds: float

    def card_entry(self) -> dict:
        return {**asdict(self.score), "data": (
            f"phantom frames from engine.phantoms.fluoro_frames.make_frame, {self.size} x {self.size} px, datasets "
            f"A/B/C in turn, every other frame tumor-free; fitted on {self.fit_frames} frames (seed "
            f"{self.fit_seed}), tested on {self.test_frames} other frames (seed {self.test_seed}); neither seed is "
            "the training seed of the net"),
            "held_out": {"auc": round(self.auc_calibrated, 4), "brier": round(self.brier_calibrated, 4),
                         "auc_max_pixel": round(self.auc_max_pixel, 4),
                         "brier_max_pixel": round(self.brier_max_pixel, 4)}}


def phantom_frames(n: int, seed: int, size: int):
    """`n` phantom frames, datasets A/B/C in turn, every other one tumor-free; (image, bit depth, label) each."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        tumor_free = i % 2 == 1
        frame = make_frame(rng, DATASETS[(i // 2) % 3], size, tumor_free=tumor_free)
        label = int(np.asarray(frame.mask).any())
        yield frame.image, frame.bit_depth, label


def _features(predictor, n: int, seed: int, size: int, say: Callable[[str], None]):
    rows, labels, max_pixel = [], [], []
    for i, (image, bit_depth, label) in enumerate(phantom_frames(n, seed, size)):
        work, _geometry, _timings = predictor.work_probabilities(image, bit_depth)
        rows.append(frame_features(work, predictor.threshold))
        max_pixel.append(float(work.max()))
        labels.append(label)
        if (i + 1) % 10 == 0:
            say(f"  {i + 1}/{n} frames")
    return np.array(rows), np.array(labels), np.array(max_pixel)


def fit_frame_score(arch: str = "unetplusplus", n_fit: int = 60, n_test: int = 60, size: int = 512,
                    fit_seed: int = 7001, test_seed: int = 7002, say: Callable[[str], None] = print
                    ) -> FrameScoreFit:
    from sklearn.linear_model import LogisticRegression

    from engine.predict.fluoro import FluoroSegPredictor

    start = time.perf_counter()
    predictor = FluoroSegPredictor(arch)
    say(f"{arch}: features of {n_fit} fitting frames")
    x_fit, y_fit, _ = _features(predictor, n_fit, fit_seed, size, say)
    say(f"{arch}: features of {n_test} held-out frames")
    x_test, y_test, max_test = _features(predictor, n_test, test_seed, size, say)
    model = LogisticRegression(C=1.0).fit(FrameScore.design(x_fit), y_fit)
    score = FrameScore(float(model.intercept_[0]), *(float(w) for w in model.coef_[0]))
    calibrated = np.array([score.probability_of(*row) for row in x_test])
    return FrameScoreFit(score, arch, n_fit, n_test, size, fit_seed, test_seed,
                         auc(y_test, calibrated), auc(y_test, max_test),
                         float(np.mean((calibrated - y_test) ** 2)), float(np.mean((max_test - y_test) ** 2)),
                         time.perf_counter() - start)


def write_frame_score(fit: FrameScoreFit) -> None:
    """Keep the fitted score in the net's card (config.json, `extra.frame_score`) and its README."""
    from engine.paths import models_dir
    from engine.predict.fluoro import card_name
    from engine.registry import load_card, render_card

    path = models_dir() / card_name(fit.arch) / "config.json"
    card = json.loads(path.read_text(encoding="utf-8"))
    card.setdefault("extra", {})["frame_score"] = fit.card_entry()
    path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    written = load_card(card_name(fit.arch))
    (written.folder / "README.md").write_text(render_card(written), encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Fit the calibrated frame-level tumor score of a segmentation net")
    parser.add_argument("--arch", default="unetplusplus", help="installed segmentation net (default unetplusplus)")
    parser.add_argument("--n-fit", type=int, default=60, help="fitting frames (default 60)")
    parser.add_argument("--n-test", type=int, default=60, help="held-out frames (default 60)")
    parser.add_argument("--size", type=int, default=512, help="frame size in pixels (default 512)")
    parser.add_argument("--write", action="store_true", help="keep the fitted score in the model card")
    args = parser.parse_args(argv)
    fit = fit_frame_score(args.arch, args.n_fit, args.n_test, args.size)
    print(json.dumps({**fit.card_entry(), "seconds": round(fit.seconds, 1)}, indent=2))
    if args.write:
        write_frame_score(fit)
        print(f"written to the {args.arch} card")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
