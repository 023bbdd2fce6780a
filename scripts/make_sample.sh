#!/usr/bin/env bash
# Regenerate edge_asr/assets/sample.flac, the project's own bundled speech sample (espeak-ng + sox,
# from Debian's packages: apt-get install espeak-ng sox). The text is in edge_asr/assets/sample.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp --suffix=.wav)
espeak-ng -v en-us -s 125 -g 4 -w "$tmp" "$(cat edge_asr/assets/sample.txt)"
sox "$tmp" -r 16000 -c 1 -b 16 edge_asr/assets/sample.flac
rm -f "$tmp"
