"""benchmarks/streaming_anchors.py without the anchors: it imports in edge-asr's venv, its clock is
streaming.simulate's, and the alignment heads it hands WhisperLiveKit decode to openai's table."""

import base64
import gzip
import json
import sys
import time

import numpy as np

from edge_asr_bench import streaming_anchors as sa


def test_imports_no_anchor():
    assert sa.SYSTEMS == ("wlk-localagreement", "wlk-simulstreaming", "whisper-live")
    assert not any(m in sys.modules for m in ("whisperlivekit", "whisper_live"))


class _Slow:
    """Takes 0.35 s of compute for every processing call: chunks pile up and are fed together."""

    def __init__(self, clock):
        self.clock, self.fed, self.calls = clock, [], []

    def feed(self, pcm):
        self.fed.append((round(self.clock.now, 1), len(pcm)))

    def process(self):
        self.clock.run(time.sleep, 0.35)
        self.calls.append(self.clock.now)

    def finish(self):
        self.finished = self.clock.now


def test_replay_clock():
    clock = sa.Clock()
    system = _Slow(clock)
    audio = np.zeros(int(sa.SR * 1.05), dtype=np.float32)  # ten chunks and a half one
    sa.replay(system, audio, clock)
    assert sum(n for _, n in system.fed) == len(audio)
    assert system.fed[0] == (0.1, 1600)  # the first chunk alone, when it arrives
    # then every chunk that arrived during the first call (0.1 -> ~0.45 s), together
    assert system.fed[1][1] == (int(system.calls[0] / sa.CHUNK_S) - 1) * 1600
    assert all(b - a >= 0.35 for a, b in zip(system.calls, system.calls[1:]))
    assert clock.calls == len(system.calls) and clock.compute_s >= 0.35 * len(system.calls)
    assert system.finished == clock.now >= 1.05 + 0.35


def test_alignment_heads_encoding(tmp_path):
    heads = [[1, 0], [2, 0], [2, 5], [3, 0], [3, 1], [3, 2], [3, 3], [3, 4]]  # tiny.en's generation_config
    (tmp_path / "config.json").write_text(json.dumps({"decoder_layers": 4, "decoder_attention_heads": 6}))
    (tmp_path / "generation_config.json").write_text(json.dumps({"alignment_heads": heads}))
    openai_tiny_en = b"ABzY8J1N>@0{>%R00Bk>$p{7v037`oCl~+#00"  # openai/whisper's _ALIGNMENT_HEADS["tiny.en"]

    def mask(encoded):
        return np.frombuffer(gzip.decompress(base64.b85decode(encoded)), dtype=bool)

    assert (mask(sa.alignment_heads(tmp_path)) == mask(openai_tiny_en)).all()
