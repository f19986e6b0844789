"""PyInstaller entry point: the same `oncolens` command as the installed console script."""

import multiprocessing
import sys

from app.launcher import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
