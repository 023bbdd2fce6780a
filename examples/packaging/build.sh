#!/usr/bin/env bash
# Freeze examples/transcribe_file_app into a one-folder app with PyInstaller, then run the frozen program
# on the sample clip bundled inside it and check the text.
#
#   pip install -c constraints.txt -e '.[app,package]'
#   examples/packaging/build.sh --model ~/.cache/edge-asr/models/tiny.en-int8 [--ship-model] [--console-only] [--out DIR]
#
# --ship-model copies the model folder into the app as model/ (the app's default model); otherwise pass
# --model at run time. --console-only leaves Qt out (the --headless tool only). Prints the build time,
# the folder size and the smoke run's time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$PWD/dist"  # git-ignored
model=""
ship=0
while [ $# -gt 0 ]; do
    case "$1" in
        --model) model="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --ship-model) ship=1; shift ;;
        --console-only) export EDGE_ASR_APP_CONSOLE_ONLY=1; shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$model" ] && [ -f "$model/manifest.json" ] || { echo "build.sh: --model DIR (an edge-asr model folder) is required" >&2; exit 2; }
python="${PYTHON:-$(command -v python || command -v python3)}"
"$python" -c "import PyInstaller" 2>/dev/null || { echo "build.sh: PyInstaller missing: pip install 'edge-asr[package]'" >&2; exit 3; }

start=$(date +%s%N)
"$python" -m PyInstaller --noconfirm --log-level WARN --distpath "$out" --workpath "$out/.build" \
    "$here/transcribe_file_app.spec" 2>&1 | grep -v "Library not found" || true
app="$out/transcribe_file_app"
[ -x "$app/transcribe_file_app" ] || { echo "build.sh: the build produced no program" >&2; exit 1; }
build_ms=$(( ($(date +%s%N) - start) / 1000000 ))
rm -rf "$out/.build"
run_model="$model"
if [ "$ship" = 1 ]; then
    rm -rf "$app/model" && cp -r "$model" "$app/model" && run_model=""
fi

sample="$app/_internal/edge_asr/assets/sample.flac"  # bundled package data: proves the data files shipped
start=$(date +%s%N)
# --vad: the bundled Silero VAD graph must load too
text=$(cd / && "$app/transcribe_file_app" --headless --vad ${run_model:+--model "$run_model"} "$sample" 2>/dev/null)
run_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "frozen app says: $text"
case "$(echo "$text" | tr 'A-Z' 'a-z')" in
    *"speech recognition runs on this computer"*) ;;
    *) echo "build.sh: unexpected transcript from the frozen app" >&2; exit 1 ;;
esac
echo "build $((build_ms / 1000)).$((build_ms % 1000 / 100)) s, folder $(du -sm "$app" | cut -f1) MB ($app), smoke run $((run_ms / 1000)).$((run_ms % 1000 / 100)) s"
