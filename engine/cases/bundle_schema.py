"""The schema of a bundle's case.json (pydantic), so that a malformed file is refused with errors that name
the field, and file references and ids that could reach outside the bundle are refused before use."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CASE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
FILE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.(png|npy)$"
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _./+()-]{0,99}$"  # modality, task, mask and heatmap names

CaseId = Annotated[str, Field(pattern=CASE_ID_PATTERN)]
FileName = Annotated[str, Field(pattern=FILE_NAME_PATTERN)]
ATTACHMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.(png|npy|json|jsonl|csv)$"
AttachmentName = Annotated[str, Field(pattern=ATTACHMENT_PATTERN)]
Key = Annotated[str, Field(pattern=KEY_PATTERN)]


def is_safe_case_id(case_id: str) -> bool:
    """An id that can name a folder: letters, digits, '.', '_', '-', 1-128 characters, not starting with '.'."""
    return isinstance(case_id, str) and re.fullmatch(CASE_ID_PATTERN, case_id) is not None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetaEntry(_Strict):
    bit_depth: int = Field(ge=1, le=64)
    units: str = Field(default="a.u.", max_length=32)
    spacing: list[float] | None = None
    origin: list[float] | None = None
    direction: list[float] | None = None
    source: dict[str, Any] | str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class ImageEntry(_Strict):
    file: FileName
    axes: str = Field(default="", pattern=r"^(|YX|YXC|ZYX|TYX)$")
    meta: MetaEntry


class TruthEntry(_Strict):
    labels: dict[Key, int | None] = Field(default_factory=dict)
    source: str = Field(default="", max_length=500)
    masks: dict[Key, FileName] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _binary(cls, labels: dict[str, int | None]) -> dict[str, int | None]:
        bad = {k: v for k, v in labels.items() if v not in (None, 0, 1)}
        if bad:
            raise ValueError(f"truth labels are 0, 1 or null; got {bad}")
        return labels


class PredictionEntry(BaseModel):
    """A stored prediction: its summary (format 1 or 2, checked by PredictionSummary) plus its arrays."""

    model_config = ConfigDict(extra="allow")
    masks: dict[Key, FileName] = Field(default_factory=dict)
    heatmaps: dict[Key, FileName] = Field(default_factory=dict)
    contours: dict[Key, list[list[Annotated[list[float], Field(min_length=2, max_length=2)]]]] = \
        Field(default_factory=dict)
    encodings: dict[FileName, dict[str, Any]] = Field(default_factory=dict)  # engine.cases.compact (format 3)


class ReadEntry(_Strict):
    reader_id: str = Field(max_length=128)
    question: str = Field(max_length=1000)
    answer: str = Field(max_length=1000)
    confidence: float | None = None
    comment: str = Field(default="", max_length=10000)
    created: str = Field(default="", max_length=40)


class CaseDocument(_Strict):
    format: str
    version: int = Field(ge=1)
    id: CaseId
    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    patient_id: str | None = Field(default=None, max_length=128)
    name: str = Field(default="", max_length=256)  # the case name a user gave (format 3)
    created: str = Field(default="", max_length=40)
    notes: str = Field(default="", max_length=100_000)
    images: dict[Key, ImageEntry]
    truth: TruthEntry | None = None
    predictions: list[PredictionEntry] = Field(default_factory=list)
    reads: list[ReadEntry] = Field(default_factory=list)
    attachments: dict[Key, AttachmentName] = Field(default_factory=dict)


def validation_problems(error: ValidationError, limit: int = 8) -> str:
    """'images.FL.meta.bit_depth: Input should be a valid integer; ...' (first `limit` problems)."""
    parts = []
    for item in error.errors()[:limit]:
        where = ".".join(str(p) for p in item["loc"]) or "the document"
        parts.append(f"{where}: {item['msg']}")
    more = len(error.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def confined(folder: Path, name: str) -> Path:
    """`folder/name` after checking it stays inside `folder` (a link pointing out of it is refused)."""
    base = folder.resolve()
    path = folder / name
    target = path.resolve()
    if target != base and base not in target.parents:
        raise ValueError(f"{name} resolves to {target}, outside the bundle folder {base}")
    return path
