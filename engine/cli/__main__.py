"""`python -m engine.cli ...` (torchrun launches training this way)."""

from engine.cli import main

raise SystemExit(main())
