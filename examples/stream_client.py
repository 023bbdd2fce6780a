"""Live transcription from `edge-asr serve` over its WebSocket: stream an audio file at real-time pace
(as a microphone would deliver it) and print committed text as it becomes final.

    edge-asr serve --model tiny.en &
    python examples/stream_client.py edge_asr/assets/sample.flac            # real-time pace
    python examples/stream_client.py talk.flac --speed 4 --api-key KEY      # 4x faster, with a key

Needs `websockets`, `numpy` and `soundfile` (all installed with edge-asr[server]). Any language works the
same way: open ws://HOST:PORT/v1/audio/stream?format=pcm_s16le&sample_rate=R&channels=C[&language=..],
send binary PCM, send {"type": "finish"}, read JSON messages until the server closes.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from urllib.parse import urlencode

import numpy as np
import soundfile as sf
from websockets.sync.client import connect


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("audio", help="audio file to stream (any rate and channel count soundfile reads)")
    p.add_argument("--url", default="ws://127.0.0.1:8000/v1/audio/stream")
    p.add_argument("--language", default=None, help="e.g. en (default: detected)")
    p.add_argument("--model", default=None, help="a model the server has (default: its default)")
    p.add_argument("--speed", type=float, default=1.0, help="playback speed (1 = real time)")
    p.add_argument("--api-key", default=None, help="when the server was started with --api-key")
    p.add_argument("--events", action="store_true", help="print every JSON message")
    args = p.parse_args()

    audio, rate = sf.read(args.audio, dtype="int16", always_2d=True)  # (frames, channels)
    query = {"format": "pcm_s16le", "sample_rate": rate, "channels": audio.shape[1]}
    query.update({k: v for k, v in (("language", args.language), ("model", args.model)) if v})
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None
    chunk = rate // 10  # 100 ms per message, as an audio callback would deliver it

    with connect(f"{args.url}?{urlencode(query)}", additional_headers=headers) as ws:
        def send_audio():
            for i in range(0, len(audio), chunk):
                ws.send(np.ascontiguousarray(audio[i:i + chunk]).tobytes())
                time.sleep(chunk / rate / args.speed)
            ws.send(json.dumps({"type": "finish"}))

        threading.Thread(target=send_audio, daemon=True).start()
        for raw in ws:
            m = json.loads(raw)
            if args.events:
                print(raw, flush=True)
            elif m["type"] == "conversation.item.input_audio_transcription.delta":
                print(m["delta"], end="", flush=True)  # committed: final, never rewritten
            elif m["type"] == "conversation.item.input_audio_transcription.completed":
                print(flush=True)  # end of an utterance
            elif m["type"] in ("error", "transcription.dropped"):
                print(f"\n[{m['type']}] {m.get('error', {}).get('message', '')}", file=sys.stderr)
            elif m["type"] == "transcription.done":
                print(f"\n--- {m['duration']:.1f} s, language {m['language']}: {m['text']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
