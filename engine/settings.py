"""User settings: a versioned JSON file in the user data folder, with migrations and env-var overrides.

Env vars win over the file: ONCOLENS_DEVICE (auto|cpu|cuda|cuda:N), ONCOLENS_BACKEND (auto|eager|onnx|cuda-graph,
see engine.fastpath), ONCOLENS_DB_URL (any SQLAlchemy URL).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from engine.paths import user_data_dir

SETTINGS_VERSION = 2
BACKENDS = ("auto", "eager", "onnx", "cuda-graph")  # inference paths, see engine.fastpath
SETTINGS_FILE = "settings.json"


@dataclass
class Settings:
    device: str = "auto"
    backend: str = "auto"  # inference path: auto | eager | onnx | cuda-graph (engine.fastpath)
    db_url: str = ""  # empty: SQLite file in the user data folder
    heatmap_opacity: float = 0.45
    last_open_dir: str = ""
    max_image_megapixels: float = 64.0  # the input gate refuses larger images before decoding them
    version: int = SETTINGS_VERSION


def _migrate(raw: dict) -> dict:
    """Bring an older settings dict up to SETTINGS_VERSION, one step at a time."""
    version = int(raw.get("version", 1))
    if version < 2:
        # v1 called the database setting "database"; v2 names it db_url.
        if "database" in raw:
            raw["db_url"] = raw.pop("database")
        version = 2
    raw["version"] = version
    return raw


def settings_path() -> Path:
    return user_data_dir() / SETTINGS_FILE


def load_settings() -> Settings:
    path = settings_path()
    raw: dict = {}
    if path.exists():
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(
                f"Settings file {path} is not valid JSON ({exc}). Fix or delete it; OncoLens will recreate it."
            ) from exc
    raw = _migrate(raw)
    known = {f.name for f in fields(Settings)}
    settings = Settings(**{k: v for k, v in raw.items() if k in known})
    if os.environ.get("ONCOLENS_DEVICE"):
        settings.device = os.environ["ONCOLENS_DEVICE"]
    if os.environ.get("ONCOLENS_BACKEND"):
        settings.backend = os.environ["ONCOLENS_BACKEND"]
    if os.environ.get("ONCOLENS_DB_URL"):
        settings.db_url = os.environ["ONCOLENS_DB_URL"]
    return settings


def save_settings(settings: Settings) -> None:
    path = settings_path()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(settings), indent=2), encoding="utf-8")
    os.replace(tmp, path)
