"""One theme: every colour is named in app/theme.py; the stylesheet and the code only use the names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import theme
from engine.paths import resources_dir

pytestmark = pytest.mark.gui
HEX = re.compile(r"#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b")
APP = Path(theme.__file__).parent


def test_the_stylesheet_uses_theme_names_that_all_resolve():
    text = (resources_dir() / "style.qss").read_text(encoding="utf-8")
    assert HEX.findall(text) == []
    filled = theme.stylesheet(text)
    assert theme.COLORS["amber"] in filled and "@" not in filled
    with pytest.raises(KeyError, match="@no_such_colour"):
        theme.stylesheet("QLabel { color: @no_such_colour; }")


def test_no_colour_literal_outside_the_theme_module():
    found = [f"{path.relative_to(APP.parent)}: {m}" for path in APP.rglob("*.py") if path.name != "theme.py"
             for m in HEX.findall(path.read_text(encoding="utf-8"))]
    assert found == []


def test_overlay_colours_are_the_papers():
    assert (theme.PREDICTION, theme.TRUTH) == ("#ffd400", "#2ee65c")
    assert len(set(theme.COLORS.values())) == len(theme.COLORS)  # one name per colour
