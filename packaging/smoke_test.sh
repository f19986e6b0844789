#!/usr/bin/env bash
# Run the built bundle's self-test offscreen in a throwaway user folder; exit code is the test's.
set -euo pipefail
cd "$(dirname "$0")/.."
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
start=$(date +%s%N)
QT_QPA_PLATFORM=offscreen ONCOLENS_HOME="$home" dist/oncolens/oncolens --self-test
end=$(date +%s%N)
echo "bundle self-test passed in $(( (end - start) / 1000000 )) ms"
# The DICOM path: read the demo PET-CT study, predict, write the DICOM SEG (highdicom's data files must be there).
ONCOLENS_HOME="$home" dist/oncolens/oncolens predict resources/demo_dicom/petct-demo-01 --export-seg "$home/seg" \
    --out "$home/petct.json"
ls "$home"/seg/*.dcm > /dev/null
echo "bundle read the demo DICOM study and wrote its DICOM SEG"
