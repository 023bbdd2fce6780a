"""`edge-asr bench server`: a bounded load test of the local server on loopback.

Starts `python -m edge_asr.server` (a separate process, so its RSS is the server's alone) on a free
loopback port, waits until it has loaded and warmed up its model, then:

1. warm-up: ``--warmup`` requests one after another (onnxruntime's arenas grow on the first decodes);
2. ``--rounds`` rounds of load: ``--clients`` threads each send ``--requests`` uploads back to back
   (``POST /v1/audio/transcriptions``, multipart, the openai wire format) and the round ends when all have
   answered; latency is client-side wall time (upload, queue wait, decode, response);
3. overload: ``--overload`` uploads at once, more than the server's decode slots + queue, to show that the
   surplus gets 503 with Retry-After at once and everything else still succeeds;
4. SIGTERM, and the time the server takes to exit.

The server's RSS is read at start (model loaded and warmed up), after the warm-up and after each round
(target: flat after warm-up), and sampled every 0.2 s for the peak. Every request's loop is bounded
(count and timeout) and only 127.0.0.1 is contacted. Results: p50/p95 latency, throughput (requests/s
and audio seconds per second), errors by status (anything but 200, and 503 outside the overload phase),
the CPU model and flags (machine.py), written to ``benchmarks/results/server-load-<cpuclass>.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from .machine import load_average, machine_info

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "edge_asr" / "assets" / "sample.flac"
HOST = "127.0.0.1"  # loopback only, always


def multipart(fields: dict | list, files: Sequence[tuple[str, str, bytes]] = ()) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data request: text ``fields`` and (name, filename, data) files."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in (fields.items() if isinstance(fields, dict) else fields):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, filename, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f'Content-Type: application/octet-stream\r\n\r\n'.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def cpu_class(cpu: dict) -> str:
    """A short name for result files: vendor family and the int8-relevant ISA tier, e.g. epyc-avx2, xeon-amx."""
    model = (cpu.get("model") or "").lower()
    family = next((f for f in ("xeon", "epyc", "ryzen", "core", "apple") if f in model), cpu.get("arch") or "cpu")
    from edge_asr.quantization import KERNEL_CLASSES

    flags = set(cpu.get("key_flags") or ())
    tier = next((name for flag, name in KERNEL_CLASSES if flag in flags), "base")
    return f"{family}-{tier}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port: int, audio: bytes, filename: str, fields: dict, timeout: float):
        self.port, self.timeout = port, timeout
        self.body, self.ctype = multipart(fields, [("file", filename, audio)])

    def transcribe(self) -> dict:
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        try:
            conn.request("POST", "/v1/audio/transcriptions", body=self.body, headers={"Content-Type": self.ctype})
            resp = conn.getresponse()
            body = resp.read()
            out = {"status": resp.status, "latency_s": time.perf_counter() - t0,
                   "retry_after": resp.getheader("Retry-After")}
            if resp.status != 200:
                try:
                    out["error"] = json.loads(body)["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    out["error"] = body[:200].decode("utf-8", "replace")
            return out
        except OSError as e:
            return {"status": 0, "latency_s": time.perf_counter() - t0, "error": f"{type(e).__name__}: {e}"}
        finally:
            conn.close()


def summarize(results: list[dict], wall_s: float, audio_s: float) -> dict:
    ok = [r["latency_s"] for r in results if r["status"] == 200]
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    out = {"requests": len(results), "ok": len(ok), "statuses": statuses, "wall_s": round(wall_s, 3),
           "throughput_rps": round(len(ok) / wall_s, 3) if wall_s > 0 else None,
           "audio_s_per_s": round(len(ok) * audio_s / wall_s, 2) if wall_s > 0 else None,
           "errors": sorted({r["error"] for r in results if r["status"] != 200 and "error" in r})[:5]}
    if ok:
        a = np.asarray(ok)
        out.update(p50_s=round(float(np.percentile(a, 50)), 3), p95_s=round(float(np.percentile(a, 95)), 3),
                   mean_s=round(float(a.mean()), 3), max_s=round(float(a.max()), 3))
    return out


class RssSampler:
    """The server process's resident memory now, and its peak sampled every ``every_s`` (psutil, else /proc)."""

    def __init__(self, pid: int, every_s: float = 0.2):
        self.pid, self.every_s = pid, every_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss_bytes(self) -> int | None:
        try:
            import psutil

            try:
                return psutil.Process(self.pid).memory_info().rss
            except psutil.Error:
                return None
        except ImportError:  # psutil is in the bench extra; Linux has /proc without it
            try:
                with open(f"/proc/{self.pid}/statm") as f:
                    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except OSError:
                return None

    def now_mb(self) -> float:
        rss = self._rss_bytes()
        if rss is None:
            return round(self.peak_mb, 1)
        self.peak_mb = max(self.peak_mb, rss / 2**20)
        return round(rss / 2**20, 1)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.now_mb()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def wait_ready(proc: subprocess.Popen, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode} before it was ready")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server was not ready within {timeout:g} s")


def run(args: argparse.Namespace) -> dict:
    audio_path = Path(args.audio)
    audio = audio_path.read_bytes()
    import soundfile as sf

    audio_s = sf.info(str(audio_path)).duration
    port = free_port()
    cmd = [sys.executable, "-m", "edge_asr.server", "--model", args.model, "--port", str(port), "--log-level", "warning",
           "--concurrency", str(args.concurrency), "--queue-size", str(args.queue_size)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.cache_dir:
        cmd += ["--cache-dir", args.cache_dir]
    fields = {"model": "whisper-1", "response_format": "json", "language": args.language}
    for item in args.field:
        name, _, value = item.partition("=")
        fields[name.strip()] = value.strip()
    report: dict = {"command": "edge-asr bench server " + " ".join(args.argv), "server_command": cmd[1:],
                    "audio": {"file": str(audio_path.relative_to(REPO) if audio_path.is_relative_to(REPO) else audio_path),
                              "seconds": round(audio_s, 3)},
                    "settings": {k: v for k, v in vars(args).items() if k != "argv"}}
    load_before = load_average()
    t_start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(proc, port, args.start_timeout)
        report["startup_s"] = round(time.perf_counter() - t_start, 2)
        client = Client(port, audio, audio_path.name, fields, args.timeout)
        with RssSampler(proc.pid) as rss:
            memory = {"start_mb": rss.now_mb()}
            warm = [client.transcribe() for _ in range(args.warmup)]
            report["warmup"] = summarize(warm, sum(r["latency_s"] for r in warm) or 1.0, audio_s)
            memory["after_warmup_mb"] = rss.now_mb()
            rounds, everything = [], []
            for i in range(args.rounds):
                t0 = time.perf_counter()
                with ThreadPoolExecutor(args.clients) as pool:
                    per_client = list(pool.map(lambda _: [client.transcribe() for _ in range(args.requests)],
                                               range(args.clients)))
                results = [r for batch in per_client for r in batch]
                everything += results
                summary = summarize(results, time.perf_counter() - t0, audio_s)
                summary["rss_after_mb"] = rss.now_mb()
                rounds.append(summary)
                print(f"round {i + 1}: {summary['ok']}/{summary['requests']} ok, p50 {summary.get('p50_s')} s, "
                      f"p95 {summary.get('p95_s')} s, {summary['throughput_rps']} req/s, RSS {summary['rss_after_mb']} MB",
                      file=sys.stderr)
            report["rounds"] = rounds
            report["load"] = summarize(everything, sum(r["wall_s"] for r in rounds), audio_s)
            if args.overload:
                t0 = time.perf_counter()
                with ThreadPoolExecutor(args.overload) as pool:
                    burst = list(pool.map(lambda _: client.transcribe(), range(args.overload)))
                over = summarize(burst, time.perf_counter() - t0, audio_s)
                over["capacity"] = args.concurrency + args.queue_size
                over["retry_after"] = sorted({r["retry_after"] for r in burst if r["status"] == 503})
                over["rejected_p95_s"] = round(float(np.percentile([r["latency_s"] for r in burst if r["status"] == 503]
                                                                   or [0.0], 95)), 3)
                report["overload"] = over
                memory["after_overload_mb"] = rss.now_mb()
            memory["peak_mb"] = round(rss.peak_mb, 1)
            memory["growth_after_warmup_mb"] = round(rounds[-1]["rss_after_mb"] - memory["after_warmup_mb"], 1) \
                if rounds else None
            report["server_rss"] = memory
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=args.shutdown_timeout)
        # uvicorn re-raises the signal after its graceful shutdown, so a clean stop exits by SIGTERM.
        report["shutdown"] = {"exit_status": code, "clean": code in (0, -signal.SIGTERM),
                              "seconds": round(time.perf_counter() - t0, 2)}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr = proc.stderr.read() if proc.stderr else ""
        report["server_log_tail"] = stderr.splitlines()[-10:]
    errors = sum(r["requests"] - r["ok"] for r in report.get("rounds", []))
    report["errors_outside_overload"] = errors
    report["machine"] = machine_info()
    report["load_average"] = {"before": load_before, "after": load_average()}  # other work on a shared machine
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-asr bench server", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny.en", help="model the server loads (default: tiny.en)")
    p.add_argument("--cache-dir", default=None, help="model cache of the server (default: edge-asr's)")
    p.add_argument("--audio", default=str(SAMPLE), help="file every request uploads (default: the bundled sample)")
    p.add_argument("--language", default="en")
    p.add_argument("--field", action="append", default=[], metavar="NAME=VALUE",
                   help="another form field of every request, e.g. beam_size=5 (repeatable)")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (default: 4)")
    p.add_argument("--requests", type=int, default=10, help="requests per client per round (default: 10)")
    p.add_argument("--rounds", type=int, default=2, help="load rounds; RSS is read after each (default: 2)")
    p.add_argument("--warmup", type=int, default=2, help="sequential requests before the load (default: 2)")
    p.add_argument("--overload", type=int, default=16,
                   help="simultaneous requests of the overload phase; 0 skips it (default: 16)")
    p.add_argument("--concurrency", type=int, default=1, help="server --concurrency (default: 1)")
    p.add_argument("--queue-size", type=int, default=8, help="server --queue-size (default: 8)")
    p.add_argument("--threads", type=int, default=None, help="server --threads (default: its own)")
    p.add_argument("--timeout", type=float, default=300.0, help="per-request timeout, seconds (default: 300)")
    p.add_argument("--start-timeout", type=float, default=180.0)
    p.add_argument("--shutdown-timeout", type=float, default=60.0)
    p.add_argument("--out", default=None, help="result JSON (default: benchmarks/results/server-load-<cpuclass>.json)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import importlib.util

    for module in ("starlette", "uvicorn", "multipart"):  # the server runs in another process: check here
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    for name in ("clients", "requests", "rounds"):
        if getattr(args, name) < 1:
            build_parser().error(f"--{name} must be at least 1")
    report = run(args)
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / \
        f"server-load-{cpu_class(report['machine']['cpu'])}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    load, mem = report["load"], report["server_rss"]
    print(f"{load['ok']}/{load['requests']} ok; p50 {load.get('p50_s')} s, p95 {load.get('p95_s')} s, "
          f"{load['throughput_rps']} req/s ({load['audio_s_per_s']} s of audio per s); errors outside overload "
          f"{report['errors_outside_overload']}; RSS start {mem.get('start_mb')} MB, after warm-up "
          f"{mem.get('after_warmup_mb')} MB, after load {report['rounds'][-1]['rss_after_mb']} MB, "
          f"peak {mem.get('peak_mb')} MB"
          + (f"; overload {report['overload']['statuses']}" if "overload" in report else "") + f" -> {out}")
    return 0 if report["errors_outside_overload"] == 0 and report["shutdown"]["clean"] else 1


if __name__ == "__main__":
    sys.exit(main())
