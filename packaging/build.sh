#!/usr/bin/env bash
# Build the one-folder bundle into dist/oncolens/ and smoke-test it (--self-test, offscreen).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
start=$(date +%s)
"$BIN/pyinstaller" --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller \
    packaging/oncolens.spec
built=$(date +%s)
test -x dist/oncolens/_internal/torch/bin/torch_shm_manager || echo "warning: torch_shm_manager missing" >&2
echo "build time: $((built - start)) s"
echo "bundle size: $(du -sh dist/oncolens | cut -f1)"
bash packaging/smoke_test.sh
