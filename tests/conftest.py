"""Shared fixtures: every test gets its own settings/database folder; Qt runs offscreen; gpu tests skip."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def graph_cache(tmp_path_factory):
    """One cache of exported inference graphs for the whole run (exports cost seconds each)."""
    return tmp_path_factory.mktemp("oncolens_cache")


@pytest.fixture(autouse=True)
def isolated_user_data(tmp_path_factory, monkeypatch, graph_cache):
    """Settings and the SQLite store live in a fresh temp folder, never the developer's own. Models run eager
    unless a test asks for another backend (tests/engine/test_fastpath.py checks the fast paths)."""
    home = tmp_path_factory.mktemp("oncolens_home")
    monkeypatch.setenv("ONCOLENS_HOME", str(home))
    monkeypatch.setenv("ONCOLENS_CACHE", str(graph_cache))
    monkeypatch.setenv("ONCOLENS_BACKEND", "eager")
    monkeypatch.delenv("ONCOLENS_DB_URL", raising=False)
    monkeypatch.delenv("ONCOLENS_DEVICE", raising=False)
    # `--models-dir` points the process at another models folder by setting this: never let it leak
    monkeypatch.delenv("ONCOLENS_MODELS_DIR", raising=False)
    return home


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA (gpu marker)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
