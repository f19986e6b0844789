"""Where OncoLens finds its shipped files and keeps the user's data, frozen (PyInstaller) or not."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "OncoLens"


def install_root() -> Path:
    """Folder holding `models/` and `resources/`: the bundle folder when frozen, else the repo root."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root)
    return Path(__file__).resolve().parent.parent


def models_dir() -> Path:
    """Shipped model cards and weights; `ONCOLENS_MODELS_DIR` points elsewhere (e.g. a site's own models)."""
    override = os.environ.get("ONCOLENS_MODELS_DIR")
    return Path(override) if override else install_root() / "models"


def resources_dir() -> Path:
    return install_root() / "resources"


def demo_cases_dir() -> Path:
    return resources_dir() / "demo_cases"


def user_data_dir() -> Path:
    """Per-user data folder (database, settings, exports); `ONCOLENS_HOME` overrides it (tests do)."""
    override = os.environ.get("ONCOLENS_HOME")
    path = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Rebuildable files (exported inference graphs, rendered phantom video): `ONCOLENS_CACHE`, else `cache/` in the
    user data folder when ONCOLENS_HOME is set, else the platform's cache folder."""
    override = os.environ.get("ONCOLENS_CACHE")
    if override:
        path = Path(override)
    elif os.environ.get("ONCOLENS_HOME"):
        path = user_data_dir() / "cache"
    else:
        path = Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path
