"""CLI rough edges a new user met (issue 18, item 13): every refusal is one clear line, exit code 2."""

from __future__ import annotations

import argparse
import io

import pytest

import engine.cli.study as study_cli
from engine.cli import build_parser, main


def _store_exists():
    from engine.store import Store

    Store().close()


def test_add_reader_without_a_terminal_fails_cleanly(monkeypatch, capsys):
    """No terminal, no --pin-file, no variable: a message saying what to use, not EOFError or a getpass warning."""
    _store_exists()
    monkeypatch.delenv(study_cli.PIN_VARIABLE, raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["study", "add-reader", "s1", "r1"]) == 2
    captured = capsys.readouterr()
    assert "No PIN was typed" in captured.err and "--pin-file" in captured.err
    assert "EOFError" not in captured.out + captured.err and "echoed" not in captured.out + captured.err


def test_add_reader_with_a_prompt_that_hits_end_of_input(monkeypatch, capsys):
    def closed(_prompt):
        raise EOFError

    monkeypatch.setattr(study_cli, "PROMPT", closed)
    monkeypatch.delenv(study_cli.PIN_VARIABLE, raising=False)
    assert main(["study", "add-reader", "s1", "r1"]) == 2
    assert "No PIN was typed" in capsys.readouterr().err


def test_study_create_with_an_unknown_kind_names_the_valid_kinds(capsys):
    assert main(["study", "create", "s1", "--label", "tumor", "--modalities", "FL", "--kind", "glioma"]) == 2
    out = capsys.readouterr().err
    assert "Unknown case kind 'glioma'" in out and "glioma_specimen" in out and "lymph_node" in out


def test_study_create_with_a_kind_that_has_no_cases_says_so(capsys):
    _store_exists()
    assert main(["study", "create", "s1", "--label", "tumor", "--modalities", "FL", "--kind", "glioma_specimen"]) == 2
    out = capsys.readouterr().err
    assert "no glioma_specimen cases" in out and "Open case bundle" in out and "lymph_node" in out
    assert "at least one case" not in out


def test_errors_name_commands_not_internal_functions():
    """The messages a user can meet name a command or a menu, never an engine function."""
    import inspect

    import engine.store.db
    import engine.studies.analysis
    import engine.studies.model

    for module in (engine.studies.analysis, engine.studies.model, engine.store.db):
        source = inspect.getsource(module)
        for name in ("see study_progress", "Store.add_case", "Store.import_bundles", "model=..."):
            assert name not in source, f"{module.__name__} names {name} in a message"


@pytest.mark.parametrize("argv", [
    ["predict", "nothing.png", "--out", "r.txt"],
    ["study", "export-reads", "s1", "--out", "r.txt"],
    ["bench", "live", "--out", "r.txt"],
    ["bench", "ci-coverage", "--out", "r.txt"],
    ["bench", "chmfl", "--out", "r.txt"],
    ["bench", "seg", "--out", "r.txt"],
    ["bench", "mfi_ffp", "--out", "r.txt"],
], ids=lambda argv: " ".join(argv[:2]))
def test_out_files_with_unknown_extensions_are_refused_before_any_work(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert "r.txt: use a" in capsys.readouterr().err
    assert not (tmp_path / "r.txt").exists()


def _options(parser: argparse.ArgumentParser, path: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _options(child, f"{path} {name}")
        elif action.option_strings and action.dest != "help":
            yield path.strip(), action


def test_every_bench_option_has_help_text():
    bench = [(path, action) for path, action in _options(build_parser()) if path.startswith("bench")]
    assert len(bench) > 20
    missing = [f"{path} {action.option_strings[0]}" for path, action in bench
               if not action.help or action.help == argparse.SUPPRESS]
    assert not missing, f"bench options without help: {missing}"


def test_models_says_the_weights_are_phantom_trained(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "trained on synthetic phantom data" in out and "not on patient data" in out
