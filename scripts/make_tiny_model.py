"""Regenerate tests/assets/tiny-model: the random tiny Whisper (tests/tiny_whisper.py, seed 0) exported
int8 by the real exporter, fidelity reference included (~1.5 MB). The runtime's tests use this committed
folder, so an install without the export extra (no torch) still runs decoding, streaming, writers and
CLI tests on the actual ONNX path. Needs the export extra: .venv/bin/python scripts/make_tiny_model.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "assets" / "tiny-model"


def main() -> int:
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_whisper import build_tiny_checkpoint

    from edge_asr_export.exporter import export_model

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = build_tiny_checkpoint(Path(tmp) / "tiny-random")
        folder, _ = export_model(checkpoint, Path(tmp) / "tiny-model", "int8", name="tiny-random",
                                 log=lambda m: print(m, file=sys.stderr))
        shutil.rmtree(OUT, ignore_errors=True)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(folder, OUT, ignore=shutil.ignore_patterns(".*"))
    print(OUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
