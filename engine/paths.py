"""Where OncoLens finds its shipped files and keeps the user's data, frozen (PyInstaller) or not."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO

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
    return private_dir(path)


# -- files only their owner may read ------------------------------------------------------------------
# The store, case bundles and exports hold patient images, truth and readers' answers. What OncoLens
# creates is readable by its owner only: folders 0700, files 0600. Folders that already exist keep
# their mode (an export into ~/Desktop must not lock the user out of their own desktop); files OncoLens
# writes are set to 0600 even when they existed before, since their content is now OncoLens's.

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: str | Path) -> Path:
    """`path` as a folder, creating it and any missing parents with mode 0700 (the umask can only narrow it)."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # another process made it in between
            pass
    if not path.is_dir():
        raise NotADirectoryError(f"{path} exists but is not a folder; choose another folder or move that file.")
    return path


def private_file(path: str | Path) -> Path:
    """Make a file OncoLens has just written (through a library that chose its own mode) readable by its owner only."""
    path = Path(path)
    os.chmod(path, PRIVATE_FILE_MODE)
    return path


def open_private(path: str | Path, mode: str = "w", **kwargs) -> IO:
    """`open(path, mode)` for writing ("w", "a", "wb", "ab"), the file created 0600 (and set to 0600 if it was
    there already); missing parent folders are created 0700."""
    if mode.rstrip("b") not in ("w", "a"):
        raise ValueError(f"open_private writes files; mode {mode!r} is not 'w', 'a', 'wb' or 'ab'.")
    path = Path(path)
    private_dir(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    fd = os.open(path, flags, PRIVATE_FILE_MODE)
    try:
        if hasattr(os, "fchmod"):  # not on Windows before Python 3.13, where modes mean little anyway
            os.fchmod(fd, PRIVATE_FILE_MODE)
        return os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise


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


def use_persistent_matplotlib_cache() -> Path | None:
    """In the frozen app, point matplotlib at a folder in the user cache that outlives the process. PyInstaller's
    runtime hook gives it a temporary folder deleted at exit, so every launch rebuilt the font cache (seconds).
    Call before matplotlib is imported; returns the folder, or None when not frozen (matplotlib's own default)."""
    if not getattr(sys, "frozen", False):
        return None
    folder = cache_dir() / "matplotlib"
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["MPLCONFIGDIR"] = str(folder)
    return folder
