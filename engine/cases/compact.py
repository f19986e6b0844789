"""Compact storage of a prediction's arrays in a case bundle, with what it takes to read them back.

Heatmaps and probability maps (floats) are kept as 8-bit codes with the offset and scale recorded
(value = offset + scale * code; the error is at most scale / 2, i.e. 1/510 for a map in [0, 1], below what the
256-colour heat layer shows). Boolean masks are kept exactly: planes as 0/1 8-bit PNG, volumes and clips as
packed bits. Integer arrays (label masks) are kept as they are. Each encoded file has an entry in the
prediction's `encodings` ({file name: encoding}); a file without one is read as stored (bundles before
version 3 kept every array losslessly).
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUANTISED = "uint8-linear"
PACKED_BITS = "packbits"
BOOL_PLANE = "bool-uint8"


def _planar(array: np.ndarray) -> bool:
    return array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)


def encode_array(array: np.ndarray) -> tuple[np.ndarray, dict[str, Any] | None]:
    """(what to write, its encoding or None when the array is written as it is)."""
    array = np.asarray(array)
    if array.dtype == bool:
        if _planar(array):
            return array.astype(np.uint8), {"encoding": BOOL_PLANE}
        return np.packbits(array.ravel()), {"encoding": PACKED_BITS, "shape": list(array.shape)}
    if np.issubdtype(array.dtype, np.floating):
        values = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low = float(values.min()) if values.size else 0.0
        high = float(values.max()) if values.size else 0.0
        scale = (high - low) / 255.0 or 1.0
        codes = np.clip(np.rint((values - low) / scale), 0, 255).astype(np.uint8)
        return codes, {"encoding": QUANTISED, "offset": low, "scale": scale, "dtype": array.dtype.str}
    return array, None


def decode_array(stored: np.ndarray, encoding: dict[str, Any] | None, what: str) -> np.ndarray:
    """The array `encode_array` was given (floats to within scale / 2); ValueError naming `what` if the
    encoding is unknown or does not fit the stored data."""
    if not encoding:
        return stored
    method = encoding.get("encoding")
    if method == BOOL_PLANE:
        return np.asarray(stored) != 0
    if method == PACKED_BITS:
        shape = tuple(int(n) for n in encoding.get("shape") or ())
        count = int(np.prod(shape)) if shape else 0
        bits = np.unpackbits(np.asarray(stored, dtype=np.uint8).ravel(), count=count)
        if bits.size != count:
            raise ValueError(f"{what}: packed bits hold {bits.size} values, the recorded shape {list(shape)} needs "
                             f"{count}. Re-save the prediction (F5 in the app).")
        return bits.reshape(shape).astype(bool)
    if method == QUANTISED:
        try:
            offset, scale = float(encoding["offset"]), float(encoding["scale"])
            dtype = np.dtype(encoding.get("dtype") or "float32")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{what}: the 8-bit encoding lacks a valid offset, scale or dtype ({exc}).") from None
        return (offset + scale * np.asarray(stored, dtype=np.float64)).astype(dtype)
    raise ValueError(f"{what}: unknown array encoding {method!r} (known: {QUANTISED}, {PACKED_BITS}, {BOOL_PLANE}). "
                     "Update OncoLens.")
