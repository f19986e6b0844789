"""PyInstaller entry point: the same `oncolens` command as the installed console script."""

import multiprocessing
import sys

from engine.paths import use_persistent_matplotlib_cache

use_persistent_matplotlib_cache()  # before anything imports matplotlib: its font cache is kept between launches

from app.launcher import main  # noqa: E402

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
