"""The US + CT phantom: labels and cues as specs/dgfnet.md section 7 asks, and no trivial shortcut."""

import numpy as np
import pytest

from engine.metrics.classification import auc
from engine.phantoms.thyroid import CENTRAL, LATERAL, make_thyroid_dataset
from engine.preprocess.us_ct import preprocessing_constants
from engine.train.dgfnet_data import prepare_crops, undersample
from engine.train.dgfnet_run import ThyroidData, load_records


@pytest.fixture(scope="module")
def nodules():
    return make_thyroid_dataset(90, seed=11)


def test_sites_prevalence_cues_and_views(nodules):
    central = np.array([n.labels[CENTRAL] for n in nodules])
    lateral = np.array([n.labels[LATERAL] for n in nodules])
    assert 0.2 < central.mean() < 0.55 and lateral.mean() < central.mean()
    assert len({n.patient_id for n in nodules}) < len(nodules)  # some patients have two nodules
    for n in nodules[:5]:
        assert len(n.us) == 2 and len(n.ct) == 3 and n.ct[0].dtype == np.int16 and n.us[0].dtype == np.uint8
        assert n.largest("US") == 0 and n.largest("CT") == 0  # one clearly largest view each
    us_cue = np.array([n.attributes["us_cue"] for n in nodules])
    ct_cue = np.array([n.attributes["ct_cue"] for n in nodules])
    # US cue sensitive, CT cue specific
    assert us_cue[central == 1].mean() > ct_cue[central == 1].mean()
    assert (1 - ct_cue[central == 0]).mean() > (1 - us_cue[central == 0]).mean()


@pytest.mark.slow
def test_trivial_image_statistics_do_not_solve_the_task():
    """Mean and spread of the crops and the box size say little: the cues must be learned from the images."""
    records, _ = load_records(ThyroidData(patients=60, seed=11))
    data = prepare_crops(records, preprocessing_constants(64, 32))
    y = data.labels[CENTRAL]
    index = undersample(y, 0)
    us, ct = data.us[data.us_eval[index]].astype(float), data.ct[data.ct_eval[index]].astype(float)
    features = {"US mean": us.mean((1, 2)), "US sd": us.std((1, 2)), "CT mean": ct.mean((1, 2)),
                "CT sd": ct.std((1, 2)), "box area": np.array([records[i].us_boxes[0].width * records[i].us_boxes[0].height
                                                               for i in index])}
    for name, values in features.items():
        a = auc(y[index], values)
        assert max(a, 1 - a) < 0.75, f"{name} alone separates the classes (AUC {a:.2f})"
