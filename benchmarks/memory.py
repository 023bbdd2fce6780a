"""Peak memory of transcription alone: `edge-asr transcribe` (and faster-whisper) in a fresh process each.

    edge-asr bench memory --manifest ../shared/audio/manifest.jsonl \
        --model base=~/.cache/edge-asr/models/base-int8 --ct2 base=~/.cache/edge-asr/bench/ct2/base-ct2 \
        --out benchmarks/results/memory.json

`edge-asr bench` reports each configuration's peak RSS over everything its worker ran (every accuracy
clip in every language, the long file, the scoring libraries). The question a desktop app asks is
narrower: how much memory does transcribing one file take? Here each (system, model, file) runs in its
own process that does nothing else: import, load the model, decode the file, transcribe it (language
given, greedy, 2 threads), print the text. The peak is the child's ru_maxrss from wait4, so it includes
Python, numpy and onnxruntime (or CTranslate2) themselves.

Files: the shortest English clip, en_jfk (11 s), the longest single clip, and the long file (the English
clips concatenated with 0.5 s pauses, written as a temporary 16 kHz WAV).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .errors import BenchRunError
from .corpus import GAP_S, SR, default_manifest, load_clip_audio, read_manifest
from .report import save_json

EDGE_CHILD = """
import sys, time
t0 = time.perf_counter()
import edge_asr
m = edge_asr.load_model(sys.argv[1], device="cpu", threads=int(sys.argv[3]))
t1 = time.perf_counter()
r = m.transcribe(sys.argv[2], language="en")
print(f"LOAD {t1 - t0:.3f} TRANSCRIBE {time.perf_counter() - t1:.3f}")
print(r.text)
"""

FW_CHILD = """
import sys, time
t0 = time.perf_counter()
from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio
m = WhisperModel(sys.argv[1], device="cpu", compute_type="int8", cpu_threads=int(sys.argv[3]))
t1 = time.perf_counter()
segments, _ = m.transcribe(decode_audio(sys.argv[2]), language="en", beam_size=1, vad_filter=False)
text = "".join(s.text for s in segments).strip()
print(f"LOAD {t1 - t0:.3f} TRANSCRIBE {time.perf_counter() - t1:.3f}")
print(text)
"""


def run_child(code: str, model: str, audio: str, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen([sys.executable, "-c", code, model, audio, str(threads)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    t0 = time.perf_counter()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise BenchRunError(f"child failed for {model} on {audio}: {err.strip()[-500:]}")
    first = out.splitlines()[0].split()
    return {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "load_s": float(first[1]),
            "transcribe_s": float(first[3]), "process_wall_s": round(wall, 3),
            "text": "\n".join(out.splitlines()[1:]).strip()}


def files(manifest: Path, work: Path) -> dict[str, str]:
    import soundfile as sf

    clips = [c for c in read_manifest(manifest) if c.language == "en"]
    short = next((c for c in clips if c.id == "en_jfk"), min(clips, key=lambda c: c.duration_s))
    longest = max(clips, key=lambda c: c.duration_s)
    gap = np.zeros(int(GAP_S * SR), np.float32)
    joined = np.concatenate([x for c in clips for x in (load_clip_audio(c), gap)])
    long_path = work / "long.wav"
    sf.write(long_path, joined, SR, subtype="FLOAT")
    return {f"{short.id} ({short.duration_s:.0f} s)": short.path,
            f"{longest.id} ({longest.duration_s:.0f} s)": longest.path,
            f"long file ({len(joined) / SR:.0f} s)": str(long_path)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="edge-asr bench memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, default=default_manifest())
    p.add_argument("--model", action="append", default=[], metavar="LABEL=FOLDER", help="edge-asr model folder")
    p.add_argument("--ct2", action="append", default=[], metavar="LABEL=FOLDER",
                   help="faster-whisper (CTranslate2) folder of the same weights, int8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if not args.manifest.is_file():
        p.error(f"manifest not found: {args.manifest}")
    report: dict = {"threads": args.threads, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        audio = files(args.manifest, Path(tmp))
        jobs = [("edge-asr", spec, EDGE_CHILD) for spec in args.model] + \
               [("faster-whisper int8", spec, FW_CHILD) for spec in args.ct2]
        for system, spec, code in jobs:
            label, folder = spec.split("=", 1)
            for name, path in audio.items():
                row = {"system": system, "model": label, "file": name,
                       **run_child(code, os.path.expanduser(folder), path, args.threads)}
                report["runs"].append(row)
                print(f"{system:20s} {label:10s} {name:34s} peak RSS {row['peak_rss_mb']:7.1f} MB  "
                      f"load {row['load_s']:.2f} s  transcribe {row['transcribe_s']:.2f} s", flush=True)
    if args.out:
        save_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
