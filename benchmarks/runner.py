"""Runs a bench: prepares the audio, builds random-weight sizes when asked, measures the machine's fp32
peak (flops.py), every planned configuration in its own worker process, then the edge/anchor pairs in
alternation, and assembles the report dict (schema.py describes and checks it) with the encoder
efficiency section."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .corpus import prepare_workload
from .flops import THREAD_VARS, efficiency_section, fp32_peak
from .machine import load_average, machine_info
from .plan import BenchConfig, Planned, pairs, plan_anchors, plan_edge, plan_random_sizes
from .schema import SCHEMA
from .spec import RANDOM_LABEL, ClipInfo, RunSpec, Workload
from .streaming_section import parse_row, streaming_clips, streaming_section, streaming_specs

# numpy's BLAS and OpenMP pools size themselves to all cores unless told (THREAD_VARS); the threads axis
# must hold for everything in the worker (log-mel's matrix product included), not only for onnxruntime.


class Workers:
    """Starts worker processes with job files in a private temporary folder."""

    def __init__(self, tmp: Path, timeout_s: float):
        self.tmp = tmp
        self.timeout_s = timeout_s
        self.count = 0

    def _env(self, threads: int) -> dict[str, str]:
        env = dict(os.environ)
        for var in THREAD_VARS:
            env[var] = str(threads)
        # The worker must import this same edge_asr_bench (a source checkout is not always installed).
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), root]))
        return env

    def run(self, job: dict, threads: int) -> dict:
        self.count += 1
        job_path, result_path = self.tmp / f"job{self.count}.json", self.tmp / f"result{self.count}.json"
        job_path.write_text(json.dumps(job))
        cmd = [sys.executable, "-m", "edge_asr_bench.worker", str(job_path), str(result_path)]
        try:
            proc = subprocess.run(cmd, env=self._env(threads), capture_output=True, text=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            return {"status": "failed", "reason": f"timed out after {self.timeout_s:.0f} s"}
        if proc.returncode != 0 or not result_path.is_file():
            tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
            how = "was killed (out of memory?)" if proc.returncode < 0 else f"exited with status {proc.returncode}"
            return {"status": "failed", "reason": f"worker {how}: {tail}"}
        return json.loads(result_path.read_text())

    def run_streaming(self, spec: RunSpec, clip: ClipInfo) -> dict:
        """One streaming simulation (edge_asr_bench.streaming --one) in its own process."""
        cmd = [sys.executable, "-m", "edge_asr_bench.streaming", "--threads", str(spec.threads),
               "--one", spec.path, clip.path, clip.text, "{}"]
        try:
            proc = subprocess.run(cmd, env=self._env(spec.threads), capture_output=True, text=True,
                                  timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            return {"status": "failed", "reason": f"timed out after {self.timeout_s:.0f} s"}
        try:
            return parse_row(proc.stdout) if proc.returncode == 0 else {
                "status": "failed", "reason": " ".join(proc.stderr.strip().splitlines()[-3:])}
        except (ValueError, IndexError):
            return {"status": "failed", "reason": f"unreadable output: {proc.stdout[-200:]!r}"}


def build_random(config: BenchConfig, root: Path, log: Callable[[str], None]
                 ) -> dict[tuple[str, str], tuple[Path | None, str | None]]:
    """Build (or reuse) each random size in a subprocess: exports hold gigabytes of torch weights that
    should not stay in the parent, and a failure (memory, size limit) becomes that size's skip reason."""
    from .random_models import SIZES, export_blocker, random_folder

    built: dict[tuple[str, str], tuple[Path | None, str | None]] = {}
    for name in config.random_sizes:
        for quant in config.random_quantizations:
            if name not in SIZES:
                built[(name, quant)] = (None, f"unknown size {name!r}; known: {', '.join(SIZES)}")
                continue
            blocker = export_blocker(SIZES[name], quant)
            if blocker:
                built[(name, quant)] = (None, blocker)
                continue
            folder = random_folder(root, name, quant)
            if not (folder / "manifest.json").is_file():
                log(f"building random-weight {name} ({quant}); this exports a full-size model and takes minutes")
                proc = subprocess.run([sys.executable, "-m", "edge_asr_bench.random_models", name, quant, str(root)],
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    tail = " ".join(proc.stderr.strip().splitlines()[-3:])
                    built[(name, quant)] = (None, f"export failed here: {tail}")
                    continue
            built[(name, quant)] = (folder, None)
    return built


def _skipped(p: Planned) -> dict:
    return {"id": p.spec.id, "spec": p.spec.to_dict(), "status": "skipped", "reason": p.reason,
            "label": RANDOM_LABEL if p.spec.weights == "random" else None}


def _public_workload(work: Workload) -> dict:
    """The workload without the temporary .npy paths (they mean nothing after the run)."""
    d = work.to_dict()
    for key in ("short", "long"):
        d[key].pop("path", None)
    for c in d["accuracy"]:
        c.pop("path", None)
    return d


def run_bench(config: BenchConfig, log: Callable[[str], None] = print, progress: bool = True) -> dict:
    from tqdm import tqdm

    from edge_asr.registry import cache_dir

    cache = cache_dir()
    machine = machine_info()
    machine["fp32_peak"] = fp32_peak(config.threads, machine["cpu"])
    with tempfile.TemporaryDirectory(prefix="edge-asr-bench-") as tmp_name:
        tmp = Path(tmp_name)
        work = prepare_workload(config.manifest, tmp / "audio", config.long_seconds, config.accuracy_clips)
        edge = plan_edge(config, cache)
        if config.random_sizes:
            edge += plan_random_sizes(config, build_random(config, cache / "bench" / "random", log))
        anchors, anchor_statuses = plan_anchors(config, edge, cache / "bench" / "ct2")
        planned = edge + anchors
        runnable = [p for p in planned if p.reason is None]
        workers = Workers(tmp, config.job_timeout_s)
        base_job = {"settings": config.settings.to_dict(), "workload": work.to_dict()}
        bar = tqdm(total=len(runnable), desc="bench", unit="config", file=sys.stderr, disable=not progress,
                   dynamic_ncols=True)
        results = []
        for p in planned:
            if p.reason is not None:
                results.append(_skipped(p))
                continue
            bar.set_postfix_str(p.spec.id, refresh=True)
            r = workers.run({**base_job, "kind": "config", "spec": p.spec.to_dict()}, p.spec.threads)
            if r.get("status") != "ok":
                r = {"id": p.spec.id, "spec": p.spec.to_dict(), **r}
            results.append(r)
            bar.update(1)
        if config.streaming:
            bar.total += len(streaming_specs(results)) * len(streaming_clips(work))
            bar.refresh()

        def stream_one(spec: RunSpec, clip: ClipInfo) -> dict:
            bar.set_postfix_str(f"streaming {spec.id} {clip.id}", refresh=True)
            row = workers.run_streaming(spec, clip)
            bar.update(1)
            return row

        streaming = streaming_section(results, work, config.streaming, stream_one)
        todo = pairs(results) if config.settings.ratio_rounds > 0 else []
        bar.total += len(todo)
        bar.refresh()
        ratios = []
        for e, a in todo:
            bar.set_postfix_str(f"{e.id} vs {a.system}", refresh=True)
            r = workers.run({**base_job, "kind": "pair", "edge": e.to_dict(), "anchor": a.to_dict()}, e.threads)
            ratios.append({"edge": e.id, "anchor": a.id, **r} if r.get("status") != "ok" else r)
            bar.update(1)
        bar.close()
    machine["load_average_end"] = load_average()
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "note": config.note,
        "command": " ".join(["edge-asr", "bench"] + sys.argv[2:]) if sys.argv[1:2] == ["bench"] else " ".join(sys.argv),
        "quick": config.quick,
        "machine": machine,
        "settings": {**config.settings.to_dict(), "models": list(config.models),
                     "quantizations": list(config.quantizations), "providers": list(config.providers),
                     "threads": list(config.threads), "decodings": list(config.decodings),
                     "edge_modes": list(config.edge_modes), "anchor_modes": list(config.anchor_modes),
                     "anchors": list(config.anchors), "random_sizes": list(config.random_sizes),
                     "streaming": config.streaming,
                     "transformers_threads": 1, "random_weights_label": RANDOM_LABEL},
        "workload": _public_workload(work),
        "anchors": anchor_statuses,
        "configs": results,
        "ratios": ratios,
        "streaming": streaming,
        "encoder_efficiency": efficiency_section(results, machine["fp32_peak"]),
    }
