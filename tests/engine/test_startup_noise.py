"""Start-up housekeeping (issue 18, item 14): alembic does not log each line twice; the frozen app keeps
matplotlib's font cache between launches."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from engine.paths import cache_dir, use_persistent_matplotlib_cache
from engine.store import Store
from engine.store.db import head_revision


def test_a_new_store_logs_its_upgrade_once_and_alembic_stays_quiet(caplog):
    with caplog.at_level(logging.INFO):
        Store().close()
        Store().close()  # already at the newest schema: nothing to say
    lines = [(r.name, r.getMessage()) for r in caplog.records]
    assert not [line for line in lines if line[0].startswith("alembic")]
    upgrades = [m for name, m in lines if "Upgrading the store" in m]
    assert len(upgrades) == 1 and upgrades[0].endswith(f"from schema (empty) to {head_revision()}.")
    assert len(lines) == len(set(lines)), "a line was logged twice"


def test_the_frozen_app_keeps_matplotlibs_cache_in_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "_MEI1234" / "mpl"))  # what PyInstaller's hook sets
    assert use_persistent_matplotlib_cache() is None  # not frozen: left alone
    assert os.environ["MPLCONFIGDIR"].endswith("mpl")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    folder = use_persistent_matplotlib_cache()
    assert folder == cache_dir() / "matplotlib" and folder.is_dir()
    assert os.environ["MPLCONFIGDIR"] == str(folder)


def test_the_bundle_entry_point_sets_it_before_importing_the_app():
    source = (Path(__file__).resolve().parents[2] / "packaging" / "entry.py").read_text(encoding="utf-8")
    assert source.index("use_persistent_matplotlib_cache()") < source.index("from app.launcher import main")
