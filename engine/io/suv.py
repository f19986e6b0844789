"""Standardised uptake value factors of a PET DICOM series, per the vendor-neutral QIBA procedure.

SUVbw = rescaled pixel value x factor, with factor = body weight (g) / decay-corrected injected dose (Bq):
- Units BQML: decay from the injection (RadiopharmaceuticalStartDateTime, or RadiopharmaceuticalStartTime on
  the SeriesDate) to the scan start. DecayCorrection START: the scan start is the series date/time when it is
  not after the earliest acquisition date/time; otherwise (the series was re-created after the scan) GE's
  private post-injection date/time (0009,100D) when present, else the earliest acquisition date/time.
  ADMIN: images are already decay-corrected to the injection, no decay term. NONE: each slice decays to its own
  acquisition date/time (one factor per slice).
- Units CNTS (Philips): the private SUV scale factor (7053,1000) as it is; else the activity-concentration
  scale factor (7053,1009) (to Bq/ml) times the BQML factor.
- Units GML: already SUVbw, factor 1.
SUL (lean body mass, Janmahasatian as PERCIST recommends) replaces the body weight with the lean body mass,
which needs PatientSize and PatientSex. A missing or zero weight, dose or half-life is an error naming the tag.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

SUVBW, SUL = "SUVbw", "SUL"
TAGS = {
    "weight": "PatientWeight (0010,1030)",
    "size": "PatientSize (0010,1020)",
    "sex": "PatientSex (0010,0040)",
    "dose": "RadionuclideTotalDose (0018,1074) in RadiopharmaceuticalInformationSequence (0054,0016)",
    "half_life": "RadionuclideHalfLife (0018,1075) in RadiopharmaceuticalInformationSequence (0054,0016)",
    "start": "RadiopharmaceuticalStartDateTime (0018,1078) or RadiopharmaceuticalStartTime (0018,1072)",
    "series": "SeriesDate (0008,0021) and SeriesTime (0008,0031)",
    "acquisition": "AcquisitionDate (0008,0022) and AcquisitionTime (0008,0032)",
    "units": "Units (0054,1001)",
    "decay": "DecayCorrection (0054,1102)",
    "corrected": "CorrectedImage (0028,0051)",
}
PHILIPS_SUV_SCALE = 0x70531000
PHILIPS_ACTIVITY_SCALE = 0x70531009
GE_POST_INJECTION = 0x0009100D


class SUVError(ValueError):
    """SUV cannot be computed: the message names the DICOM tag that is missing or wrong, and the file."""


@dataclass(frozen=True)
class SUVFactors:
    """Factors for one series (one per dataset given, in that order) and every input they came from."""

    kind: str
    factors: tuple[float, ...]
    method: str
    inputs: dict[str, Any]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def factor(self) -> float:
        """The series' factor (the first slice's when they differ: DecayCorrection NONE)."""
        return self.factors[0]

    def to_dict(self) -> dict[str, Any]:
        distinct = sorted(set(self.factors))
        return {"kind": self.kind, "factor": self.factor, "factor_min": distinct[0], "factor_max": distinct[-1],
                "method": self.method, "inputs": dict(self.inputs), "warnings": list(self.warnings)}


def parse_da(value: Any) -> datetime | None:
    text = str(value or "").strip()
    return datetime.strptime(text[:8], "%Y%m%d") if len(text) >= 8 and text[:8].isdigit() else None


def parse_tm(value: Any) -> timedelta | None:
    """DICOM TM (HH, HHMM, HHMMSS, HHMMSS.ffffff, also HH:MM:SS) as time since midnight."""
    text = str(value or "").strip().replace(":", "")
    if not text or not text[:2].isdigit():
        return None
    whole, _, frac = text.partition(".")
    h = int(whole[0:2])
    m = int(whole[2:4]) if len(whole) >= 4 else 0
    s = int(whole[4:6]) if len(whole) >= 6 else 0
    micro = int((frac + "000000")[:6]) if frac.isdigit() else 0
    return timedelta(hours=h, minutes=m, seconds=s, microseconds=micro)


def parse_dt(value: Any) -> datetime | None:
    """DICOM DT (YYYYMMDDHHMMSS.ffffff, an offset such as +0100 is ignored: all times of one scan share it)."""
    text = str(value or "").strip()
    for sign in "+-":
        if sign in text[8:]:
            text = text[:8] + text[8:].split(sign)[0]
    day = parse_da(text)
    if day is None:
        return None
    time = parse_tm(text[8:]) if len(text) > 8 else timedelta(0)
    return day + (time or timedelta(0))


def _combine(date: Any, time: Any) -> datetime | None:
    day, t = parse_da(date), parse_tm(time)
    return None if day is None or t is None else day + t


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "ignore").strip("\x00 ")
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _private(ds: Any, tag: int) -> float | None:
    element = ds.get(tag) if hasattr(ds, "get") else None
    return None if element is None else _number(element.value)


def _radiopharmaceutical(ds: Any, where: str) -> Any:
    seq = getattr(ds, "RadiopharmaceuticalInformationSequence", None)
    if not seq:
        raise SUVError(f"{where}: no RadiopharmaceuticalInformationSequence (0054,0016): the injected dose, half-life "
                       "and injection time are unknown. Enter them, or re-export the PET series with its "
                       "radiopharmaceutical information.")
    return seq[0]


def lean_body_mass_kg(weight_kg: float, height_m: float, sex: str) -> float:
    """Janmahasatian et al. 2005 (the lean body mass PERCIST recommends for SUL)."""
    bmi = weight_kg / height_m ** 2
    if sex == "M":
        return 9270 * weight_kg / (6680 + 216 * bmi)
    if sex == "F":
        return 9270 * weight_kg / (8780 + 244 * bmi)
    raise SUVError(f"{TAGS['sex']} is {sex!r}; SUL (lean body mass) needs M or F. Use SUVbw instead.")


def _scan_start(ds0: Any, datasets: Sequence[Any], where: str, warnings: list[str]) -> tuple[datetime, str]:
    """The QIBA scan reference time of a DecayCorrection START series and the rule that gave it."""
    series = _combine(getattr(ds0, "SeriesDate", None), getattr(ds0, "SeriesTime", None))
    acquisitions = [_combine(getattr(d, "AcquisitionDate", None) or getattr(ds0, "SeriesDate", None),
                             getattr(d, "AcquisitionTime", None)) for d in datasets]
    acquisitions = [a for a in acquisitions if a is not None]
    if series is None and not acquisitions:
        raise SUVError(f"{where}: no {TAGS['series']} nor {TAGS['acquisition']}: the scan time is unknown.")
    earliest = min(acquisitions) if acquisitions else None
    if series is not None and (earliest is None or series <= earliest):
        return series, "series date/time (not after the earliest acquisition)"
    ge = parse_dt(_raw_text(ds0.get(GE_POST_INJECTION)) if hasattr(ds0, "get") else None)
    if ge is not None:
        return ge, "GE private post-injection date/time (0009,100D) (series date/time is after the acquisition)"
    warnings.append("SeriesTime is after the earliest AcquisitionTime (the series was re-created after the scan); "
                    "the earliest acquisition date/time is used as the scan start.")
    return earliest, "earliest acquisition date/time (series date/time is after it)"


def _raw_text(element: Any) -> str | None:
    if element is None:
        return None
    value = element.value
    return value.decode("ascii", "ignore") if isinstance(value, bytes) else str(value)


def suv_factors(datasets: Sequence[Any], kind: str = SUVBW, where: str = "PET series") -> SUVFactors:
    """SUV factors of one PET series from its datasets (headers suffice), see the module docstring."""
    if not datasets:
        raise SUVError(f"{where}: no PET images.")
    ds0 = datasets[0]
    warnings: list[str] = []
    units = str(getattr(ds0, "Units", "") or "").upper()
    if not units:
        raise SUVError(f"{where}: {TAGS['units']} is missing; the pixel values' unit is unknown.")
    raw_corrected = getattr(ds0, "CorrectedImage", None) or []
    corrected = [str(c).upper() for c in ([raw_corrected] if isinstance(raw_corrected, str) else raw_corrected)]
    decay = str(getattr(ds0, "DecayCorrection", "") or "").upper()
    if units != "GML":
        if "ATTN" not in corrected:
            raise SUVError(f"{where}: {TAGS['corrected']} is {corrected or 'missing'}, without ATTN: the images are "
                           "not attenuation-corrected and SUV would be meaningless. Open the attenuation-corrected "
                           "PET series.")
        if decay not in ("START", "ADMIN", "NONE"):
            raise SUVError(f"{where}: {TAGS['decay']} is {decay or 'missing'}; expected START, ADMIN or NONE.")
        if decay != "NONE" and "DECY" not in corrected:
            raise SUVError(f"{where}: {TAGS['decay']} is {decay} but {TAGS['corrected']} ({corrected}) lacks DECY.")
    weight = _number(getattr(ds0, "PatientWeight", None))
    if not weight or weight <= 0:
        raise SUVError(f"{where}: {TAGS['weight']} is {'zero' if weight == 0 else 'missing'}; SUV needs the "
                       "patient's weight (kg). Enter it (the GUI asks), or set it in the DICOM header.")
    for d in datasets[1:]:
        if _number(getattr(d, "PatientWeight", None)) != weight or str(getattr(d, "Units", "")).upper() != units:
            raise SUVError(f"{where}: {TAGS['weight']} or {TAGS['units']} differ between slices: the files are "
                           "not one series.")
    inputs: dict[str, Any] = {"units": units, "decay_correction": decay or None, "weight_kg": weight,
                              "manufacturer": str(getattr(ds0, "Manufacturer", "") or "")}
    body_g = weight * 1000.0
    if kind == SUL:
        height = _number(getattr(ds0, "PatientSize", None))
        if not height or height <= 0:
            raise SUVError(f"{where}: {TAGS['size']} is missing or zero; SUL needs the height (m).")
        lbm = lean_body_mass_kg(weight, height, str(getattr(ds0, "PatientSex", "") or "").upper())
        inputs.update(height_m=height, sex=str(ds0.PatientSex), lean_body_mass_kg=round(lbm, 3))
        body_g = lbm * 1000.0
    elif kind != SUVBW:
        raise ValueError(f"Unknown SUV kind {kind!r}: use {SUVBW} or {SUL}.")
    if units == "GML":
        factor = body_g / (weight * 1000.0)
        return SUVFactors(kind, (factor,) * len(datasets), "Units GML: values are SUVbw already", inputs)
    if units == "CNTS":
        scales = [_private(d, PHILIPS_SUV_SCALE) for d in datasets]
        if all(s for s in scales):
            inputs["philips_suv_scale_factor"] = scales[0]
            factors = tuple(float(s) * body_g / (weight * 1000.0) for s in scales)
            return SUVFactors(kind, factors, "Units CNTS: Philips private SUV scale factor (7053,1000)", inputs)
        activity = [_private(d, PHILIPS_ACTIVITY_SCALE) for d in datasets]
        if not all(a for a in activity):
            raise SUVError(f"{where}: {TAGS['units']} is CNTS but neither the Philips SUV scale factor (7053,1000) "
                           "nor the activity concentration scale factor (7053,1009) is present: counts cannot be "
                           "converted to SUV. Export the series in BQML.")
        inputs["philips_activity_concentration_scale_factor"] = activity[0]
    else:
        activity = [1.0] * len(datasets)
        if units != "BQML":
            raise SUVError(f"{where}: {TAGS['units']} is {units}; SUV is computed from BQML, CNTS (Philips) or GML.")
    rp = _radiopharmaceutical(ds0, where)
    dose = _number(getattr(rp, "RadionuclideTotalDose", None))
    half_life = _number(getattr(rp, "RadionuclideHalfLife", None))
    if not dose or dose <= 0:
        raise SUVError(f"{where}: {TAGS['dose']} is {'zero' if dose == 0 else 'missing'}; SUV needs the injected "
                       "dose (Bq). Enter it (the GUI asks), or set it in the DICOM header.")
    if not half_life or half_life <= 0:
        raise SUVError(f"{where}: {TAGS['half_life']} is missing or zero.")
    inputs.update(dose_bq=dose, half_life_s=half_life,
                  radiopharmaceutical=str(getattr(rp, "Radiopharmaceutical", "") or ""))
    method = f"Units {units}, DecayCorrection {decay}"
    if units == "CNTS":
        method += ", Philips activity concentration scale factor (7053,1009)"
    if decay == "ADMIN":
        decays = [0.0] * len(datasets)
        method += ": images decay-corrected to the injection, no decay term"
    else:
        start = parse_dt(getattr(rp, "RadiopharmaceuticalStartDateTime", None))
        start_rule = "RadiopharmaceuticalStartDateTime"
        if start is None:
            start = _combine(getattr(ds0, "SeriesDate", None), getattr(rp, "RadiopharmaceuticalStartTime", None))
            start_rule = "RadiopharmaceuticalStartTime on the SeriesDate"
        if start is None:
            raise SUVError(f"{where}: no injection time: {TAGS['start']} (with {TAGS['series']}) is missing.")
        if decay == "START":
            scan, rule = _scan_start(ds0, datasets, where, warnings)
            scans = [scan] * len(datasets)
            method += f": decay to the scan start = {rule}"
        else:
            scans = [_combine(getattr(d, "AcquisitionDate", None) or getattr(ds0, "SeriesDate", None),
                              getattr(d, "AcquisitionTime", None)) for d in datasets]
            if any(s is None for s in scans):
                raise SUVError(f"{where}: DecayCorrection NONE needs every slice's {TAGS['acquisition']}.")
            method += ": each slice decays to its own acquisition date/time"
        decays = [(s - start).total_seconds() for s in scans]
        if min(decays) < 0 and start_rule != "RadiopharmaceuticalStartDateTime" and max(decays) + 86400 < 6 * 3600:
            decays = [d + 86400 for d in decays]
            warnings.append("The injection time is after the scan time on the series date: the injection is taken to "
                            "be on the day before (the scan spans midnight).")
        if min(decays) < 0:
            raise SUVError(f"{where}: the injection ({start.isoformat()}, {TAGS['start']}) is after the scan start "
                           f"({scans[0].isoformat()}); check the times in the header.")
        inputs.update(injection=start.isoformat(), injection_rule=start_rule, scan_start=scans[0].isoformat())
    inputs["decay_s"] = decays[0]
    factors = tuple(float(a) * body_g / (dose * 2.0 ** (-d / half_life)) for a, d in zip(activity, decays))
    return SUVFactors(kind, factors, method, inputs, tuple(warnings))
