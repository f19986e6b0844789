"""Does the lymph-node phantom leak its label outside the node? Background-only crops (the node and a margin
painted over with the cloth's own colour) should carry no label: a model or a small classifier on them must
score near AUC 0.5.

    python -m engine.train.node_leakage --nodes 200
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np

from engine.metrics.classification import auc
from engine.phantoms.lymph_node import MODALITIES, NodeRecord, make_node_dataset

MARGIN_PX = 3  # the node's anti-aliased outline and blur


def background_only(record: NodeRecord, margin: int = MARGIN_PX) -> dict[str, np.ndarray]:
    """The node's images with the node (dilated by `margin` pixels) replaced by each image's median background."""
    hidden = cv2.dilate(record.mask.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8)).astype(bool)
    out = {}
    for modality in MODALITIES:
        image = record.images[modality].copy()
        fill = np.median(image[~hidden], axis=0)
        image[hidden] = np.round(fill).astype(image.dtype)
        out[modality] = image
    return out


def background_features(images: dict[str, np.ndarray], hidden: np.ndarray) -> np.ndarray:
    """Simple statistics of the background per modality and channel: mean, spread and 99th percentile of the
    whole background, and the mean of two rings round the hidden node (where a halo or spill would be)."""
    distance = cv2.distanceTransform((~hidden).astype(np.uint8), cv2.DIST_L2, 3)
    rings = [(distance > 0) & (distance <= 8), (distance > 8) & (distance <= 24)]
    values = []
    for modality in MODALITIES:
        image = images[modality].astype(np.float32)
        channels = 1 if image.ndim == 2 else image.shape[2]
        pixels = image[~hidden].reshape(-1, channels)
        values += [*pixels.mean(0), *pixels.std(0), *np.percentile(pixels, 99, axis=0)]
        for ring in rings:
            values += [*image[ring].reshape(-1, channels).mean(0)]
    return np.array(values, np.float32)


def measure_leakage(n_nodes: int = 200, seed: int = 99, model: bool = True) -> dict:
    """AUC of the shipped tri-modal MFI-FFP and of a cross-validated logistic classifier on background-only
    crops of `n_nodes` phantom nodes (seed not the training seed)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    records = make_node_dataset(n_patients=max(1, n_nodes // 20), nodes_per_patient=20, seed=seed)[:n_nodes]
    labels = np.array([r.label for r in records])
    crops = [background_only(r) for r in records]
    hidden = [cv2.dilate(r.mask.astype(np.uint8), np.ones((2 * MARGIN_PX + 1,) * 2, np.uint8)).astype(bool)
              for r in records]
    features = np.stack([background_features(c, h) for c, h in zip(crops, hidden, strict=True)])
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv_scores = cross_val_predict(classifier, features, labels, cv=5, method="predict_proba")[:, 1]
    result = {"nodes": len(records), "positives": int(labels.sum()), "seed": seed, "margin_px": MARGIN_PX,
              "auc_background_classifier": round(auc(labels, cv_scores), 4)}
    if model:
        from engine.data import ImageMeta, ModalityImage
        from engine.predict.lymph_node import MFIFFPPredictor

        predictor = MFIFFPPredictor()
        model_scores, full_scores = [], []
        for record, crop in zip(records, crops, strict=True):
            for images, out in ((crop, model_scores), (record.images, full_scores)):
                typed = {m: ModalityImage(m, images[m], ImageMeta(bit_depth=8)) for m in MODALITIES}
                out.append(next(iter(predictor.predict(typed, explain=False).probabilities.values())))
        result["auc_model_background_only"] = round(auc(labels, model_scores), 4)
        result["auc_model_full_images"] = round(auc(labels, full_scores), 4)
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Label leakage of the lymph-node phantom outside the node")
    parser.add_argument("--nodes", type=int, default=200, help="phantom nodes (default 200)")
    parser.add_argument("--seed", type=int, default=99, help="phantom seed (default 99; training used 2024)")
    parser.add_argument("--no-model", action="store_true", help="only the small background classifier")
    args = parser.parse_args(argv)
    print(json.dumps(measure_leakage(args.nodes, args.seed, model=not args.no_model), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
