"""The `oncolens` entry point: the engine's CLI, with the GUI plugged in (Qt is imported only for `gui`)."""

from __future__ import annotations

import sys


def _launch_gui(paths=(), demo: bool = True) -> int:
    from app.main import run_gui

    return run_gui(open_paths=tuple(paths), demo=demo)


def _self_test() -> int:
    """Engine self-test, then build the main window offscreen and time it (used by the bundle smoke test)."""
    import os

    from engine.selftest import run_self_test

    code = run_self_test()
    if code != 0:
        return code
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from app.selftest import window_self_test

    return window_self_test()


def _petct_view_runner(*args, **kwargs) -> dict:
    from app.petct_bench import run_petct_view_bench

    return run_petct_view_bench(*args, **kwargs)


def run_live_view_bench(source, segmenter, seconds: float, smoothing: float | None = None) -> dict:
    """`oncolens bench live`'s GUI part (Context.live_view_runner): the real live view offscreen on `source` and
    `segmenter` for `seconds`, with a heartbeat on the GUI thread. Returns {"stats", "gui_stall_max_ms",
    "gui_stall_p99_ms", "frames_drawn", ...}; Qt is imported only when it runs."""
    from app.live.bench import run_live_view_bench as run

    return run(source, segmenter, seconds, smoothing=smoothing)


def main(argv=None) -> int:
    from engine.cli import main as cli_main

    return cli_main(sys.argv[1:] if argv is None else argv, gui_launcher=_launch_gui, self_test=_self_test,
                    petct_view_runner=_petct_view_runner, live_view_runner=run_live_view_bench)


if __name__ == "__main__":
    raise SystemExit(main())
