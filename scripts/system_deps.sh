#!/usr/bin/env bash
# Debian packages the tests, examples and recipes use, installed only when missing:
#   espeak-ng     synthesized speech (examples/domain_terms, scripts/make_sample.sh)
#   libportaudio2 the microphone (`edge-asr listen`, the caption app's device picker)
#   xvfb and Qt's runtime libraries: the PySide6 caption app under test (offscreen or Xvfb)
#   fonts-dejavu-core  a font for Qt to draw text with (offscreen screenshots are blank without one)
#   libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1  Qt's xcb platform (the apps on a desktop or under Xvfb)
# As root (CI) it runs apt-get; otherwise it prints what is missing and carries on, so a developer
# without root still gets a suite whose dependent tests skip with that reason.
set -uo pipefail
packages=(espeak-ng libportaudio2 xvfb libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1
          libdbus-1-3 libglib2.0-0 fonts-dejavu-core libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "system_deps: not root or no apt-get; missing Debian packages: ${missing[*]}" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } \
    || echo "system_deps: apt-get failed for: ${missing[*]}" >&2
exit 0
