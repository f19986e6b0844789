"""The typed data model every layer shares: images with axes and geometry, predictions and their summaries.

A leaf: it imports nothing of the engine, so io, cases, store, predict, studies and the GUI can all use it.
"""

from engine.data.image import (
    AU,
    AXES,
    COUNTS,
    HU,
    RGB,
    SUV,
    TYX,
    YX,
    YXC,
    ZYX,
    ImageMeta,
    ModalityImage,
    dtype_bit_depth,
    image_of,
    plane_axes,
)
from engine.data.prediction import (
    NOT_ASSESSABLE,
    SUMMARY_VERSION,
    Prediction,
    PredictionError,
    PredictionSummary,
    TaskResult,
    checked_probability,
    model_id,
)
from engine.data.times import utc_now

__all__ = [
    "AU", "AXES", "NOT_ASSESSABLE", "COUNTS", "HU", "RGB", "SUMMARY_VERSION", "SUV", "TYX", "YX", "YXC", "ZYX", "ImageMeta",
    "ModalityImage", "Prediction", "PredictionError", "PredictionSummary", "TaskResult", "checked_probability",
    "dtype_bit_depth", "image_of", "model_id", "plane_axes", "utc_now",
]
