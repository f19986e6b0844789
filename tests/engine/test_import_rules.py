"""DESIGN rule: nothing under engine/ imports PySide6, pyqtgraph or app."""

import ast
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "engine"
FORBIDDEN = ("PySide6", "pyqtgraph", "app", "PyQt5", "PyQt6")


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            yield node.lineno, str(node.args[0].value)


def test_engine_sources_import_no_qt_or_app():
    offenders = [
        f"{path.relative_to(ENGINE.parent)}:{line} imports {name}"
        for path in sorted(ENGINE.rglob("*.py"))
        for line, name in _imports(path)
        if name.split(".")[0] in FORBIDDEN
    ]
    assert not offenders, "engine/ must not import Qt or app:\n" + "\n".join(offenders)


def test_importing_whole_engine_loads_no_qt():
    """Import every engine module in a fresh interpreter and check no Qt module got loaded."""
    modules = sorted(
        ".".join(p.relative_to(ENGINE.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in ENGINE.rglob("*.py") if "migrations" not in p.parts and p.stem != "__main__"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'app')]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"Qt/app modules loaded by engine imports: {out.stdout}"


def _layers() -> list[str]:
    import tomllib

    config = tomllib.loads((ENGINE.parent / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [name.strip() for layer in contract["layers"] for name in layer.replace(":", "|").split("|")]


def test_every_engine_module_has_a_layer():
    """A new top-level module or package of the engine must be placed in the layers contract."""
    named = set(_layers())
    tops = {f"engine.{p.stem if p.is_file() else p.name}" for p in ENGINE.iterdir()
            if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    assert tops - named == set(), f"engine modules missing from [tool.importlinter] layers: {sorted(tops - named)}"


def test_import_linter_contracts_are_kept():
    """The layers of DESIGN.md (pyproject.toml [tool.importlinter]): the registry is a leaf, data imports
    nothing, no layer imports a layer above it, and the engine never imports Qt or the app."""
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, timeout=300,
                         cwd=ENGINE.parent)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "2 kept, 0 broken" in out.stdout


def test_importing_engine_nets_registers_the_family_of_every_shipped_card():
    """The self-test (and the bundle's) builds every shipped net right after `import engine.nets`: a family
    registered only by its predictor module would be missing there."""
    code = ("import engine.nets\nfrom engine.registry import families, list_models\n"
            "print(sorted({c.family for c in list_models()} - set(families())))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
