"""`edge-asr bench server` (the loopback load test) runs end to end, short, on the tiny random model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("starlette", reason="needs the server extra")


def test_bench_server_smoke(runtime_model_dir, tmp_path):
    from edge_asr_bench.commands import main

    clip = tmp_path / "noise.wav"
    sf.write(clip, np.random.default_rng(0).normal(0, 0.05, 16000).astype(np.float32), 16000)
    out = tmp_path / "load.json"
    code = main(["server", "--model", str(runtime_model_dir), "--cache-dir", str(tmp_path), "--audio", str(clip),
                 "--clients", "1", "--requests", "1", "--rounds", "1", "--warmup", "0", "--overload", "3",
                 "--queue-size", "0", "--field", "logprob_threshold=none", "--field", "compression_ratio_threshold=none",
                 "--out", str(out)])
    report = json.loads(out.read_text())
    assert code == 0, report
    load, over = report["load"], report["overload"]
    assert load["statuses"] == {"200": 1} and report["errors_outside_overload"] == 0
    assert over["statuses"].get("503", 0) >= 1 and set(over["statuses"]) <= {"200", "503"}  # 3 at once, 1 slot
    assert over["retry_after"] and report["shutdown"]["clean"]
    assert report["server_rss"]["start_mb"] > 0 and report["machine"]["cpu"]["key_flags"] is not None
