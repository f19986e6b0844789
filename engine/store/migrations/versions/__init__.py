"""One file per schema revision, oldest first: 0001_initial, then each later change."""
