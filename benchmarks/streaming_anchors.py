"""Live-streaming anchors on the streaming bench's simulated real-time clock.

Systems (the anchors' own incremental objects, never their web servers):

- ``wlk-localagreement``: WhisperLiveKit's ``OnlineASRProcessor`` (whisper_streaming's LocalAgreement-2) over
  its faster-whisper backend, reading the CTranslate2 folder of the model.
- ``wlk-simulstreaming``: WhisperLiveKit's ``SimulStreamingOnlineProcessor`` (AlignAtt). Its decoder is
  PyTorch: WhisperLiveKit's loader reads our transformers checkpoint (imported from the same CTranslate2
  weights) and maps the names to openai-whisper's itself; the encoder is faster-whisper on the CTranslate2
  folder (WhisperLiveKit's default on Linux when faster-whisper is installed; ``--simul-encoder whisper``
  runs the PyTorch encoder instead). Alignment heads come from the checkpoint's generation_config.
- ``whisper-live``: whisper-live's ``ServeClientFasterWhisper`` transcription loop (re-transcribe the
  unfinished audio once >= 1 s is pending; a segment is final when Whisper closes it or after
  ``same_output_threshold`` identical outputs), driven step by step with a stand-in websocket.

WhisperLiveKit runs with its server defaults: VAC on (its Silero VAD splits the audio; silence start runs
``start_silence``, silence end ``end_silence``; ``--no-vac`` feeds everything), LocalAgreement buffer trimming
"segment" at 15 s, beam 5 (hard-coded in its faster-whisper backend); SimulStreaming frame threshold 25,
greedy, audio_max_len 30 s, audio_min_len 0. whisper-live runs with its client defaults (use_vad=True,
no_speech_thresh 0.45, same_output_threshold 10, int8 on CPU).

Simulated real time as ``streaming.simulate``: chunk k (0.1 s) arrives at k * 0.1 s; a processing call that
starts at virtual time t and computes c seconds ends at t + c; the next chunk is fed at max(its arrival,
that end), together with every chunk that arrived meanwhile (WhisperLiveKit drains its queue and whisper-live
reads its whole buffer that way); one processing pass follows each feed, so WhisperLiveKit's
``min_chunk_size`` 0.1 s is what this clock does. Events carry the virtual time at which their call returned.
VAD and feeding time count as compute too; whisper-live's ``time.sleep`` (0.1 s after a repeated output)
advances the clock without counting as compute. End of stream: WhisperLiveKit's ``finish`` path (LocalAgreement
commits its last hypothesis, SimulStreaming decodes with ``is_last``); whisper-live has no flush, so its
pending segment after the last pass is taken as final (what its client shows).

Set up (a separate venv with the anchors' pins) and run::

    bash scripts/setup_streaming_anchors.sh
    .venv-anchors/bin/python benchmarks/streaming_anchors.py --system wlk-localagreement \
        --model-dir ~/.cache/edge-asr/models/tiny.en-int8 --audio ../shared/audio/en_jfk.flac --language en --threads 2

``--model-dir`` is an edge-asr model folder (its manifest's source), a ``<name>-ct2`` folder or a
``<name>-transformers`` checkpoint; the other one is its sibling in ``<cache>/sources``. The last stdout line
is one JSON object (see ``run``). This file must import without the anchors (edge-asr's venv imports it
as ``edge_asr_bench.streaming_anchors``) and must run without edge_asr (the anchors' venv lacks it).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import resource
import sys
import time
import types
from importlib import metadata
from pathlib import Path

import numpy as np

SR = 16000
CHUNK_S = 0.1
SYSTEMS = ("wlk-localagreement", "wlk-simulstreaming", "whisper-live")
REPO = Path(__file__).resolve().parent.parent
WARMUP = REPO / "edge_asr" / "assets" / "sample.flac"
VERSIONED = ("whisperlivekit", "whisper-live", "faster-whisper", "ctranslate2", "torch", "onnxruntime", "numpy")


class Clock:
    """Virtual time of the simulated session and the compute spent."""

    def __init__(self):
        self.now = 0.0
        self.compute_s = 0.0
        self.cpu_s = 0.0  # CPU time of the same calls (all threads): with compute_s, shows a shared CPU
        self.calls = 0

    def run(self, fn, *args, call: bool = True):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(*args)
        spent = time.perf_counter() - t0
        self.now += spent
        self.compute_s += spent
        self.cpu_s += time.process_time() - c0
        self.calls += call
        return out

    def sleep(self, seconds: float):
        """A sleep inside the anchor: the session waits, the CPU does not."""
        self.now += seconds


class Events:
    """committed: [time, text, words]; tentative: [time, text] whenever the shown text changes."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.committed: list = []
        self.tentative: list = []
        self.raw: list[str] = []  # committed text as the anchor spaced it (tokens may carry their own spaces)

    def commit(self, text: str, words: list):
        if text.strip():
            self.raw.append(text)
            self.committed.append([round(self.clock.now, 3), " ".join(text.split()), words])

    def show(self, text: str):
        text = " ".join(text.split())
        if not self.tentative or self.tentative[-1][1] != text:
            self.tentative.append([round(self.clock.now, 3), text])


# -- model folders ------------------------------------------------------------------------------------------

def cache_dir() -> Path:
    # edge_asr.registry.cache_dir, repeated: edge_asr is not installed in the anchors' venv
    if os.environ.get("EDGE_ASR_CACHE"):
        return Path(os.environ["EDGE_ASR_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "edge-asr"


def _anchor_sources():
    try:
        from edge_asr_bench import anchor_sources
    except ImportError:  # run as a script in the anchors' venv: the module only needs the standard library
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import anchor_sources
    return anchor_sources


def model_sources(path: Path) -> tuple[str, Path, Path | None]:
    """(model name, faster-whisper folder, transformers checkpoint or None) for --model-dir."""
    sources = _anchor_sources()
    if (path / "manifest.json").is_file():
        name, ct2, hf = sources.source_dirs(path)
    elif path.name.endswith("-transformers"):
        name, hf = path.name[: -len("-transformers")], path
        ct2 = path.with_name(name + "-ct2")
    else:
        name, ct2 = (path.name[: -len("-ct2")] if path.name.endswith("-ct2") else path.name), path
        hf = path.with_name(name + "-transformers")
        if not hf.is_dir():  # e.g. the assembled faster-whisper folder under <cache>/bench/ct2
            hf = cache_dir() / "sources" / (name + "-transformers")
    if ct2 is None or not ct2.is_dir():
        raise SystemExit(f"no CTranslate2 folder for {path} (expected {name}-ct2 beside its checkpoint)")
    fw = sources.faster_whisper_folder(ct2, cache_dir() / "bench" / "ct2")
    return name, fw, hf if hf is not None and (hf / "config.json").is_file() else None


def alignment_heads(hf: Path) -> str:
    """The checkpoint's alignment heads in openai-whisper's encoding (base85 of a gzipped bool mask)."""
    config = json.loads((hf / "config.json").read_text())
    heads = json.loads((hf / "generation_config.json").read_text())["alignment_heads"]
    mask = np.zeros((config["decoder_layers"], config["decoder_attention_heads"]), dtype=bool)
    for layer, head in heads:
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes())).decode()


def named_checkpoint(name: str, hf: Path) -> Path:
    """The checkpoint under a folder called ``name``: WhisperLiveKit picks the English-only tokenizer from
    the folder name ending in ``.en`` (``tiny.en-transformers`` would get the multilingual one)."""
    out = cache_dir() / "bench" / "wlk" / name
    out.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "model.safetensors"):
        if not (out / f).exists():
            os.symlink((hf / f).resolve(), out / f)
    return out


def pin_faster_whisper_threads(threads: int):
    """WhisperLiveKit builds faster_whisper.WhisperModel without cpu_threads (CTranslate2 then takes 4)."""
    import faster_whisper

    base = faster_whisper.WhisperModel

    class Pinned(base):
        def __init__(self, *args, **kwargs):
            kwargs["cpu_threads"] = threads
            super().__init__(*args, **kwargs)

    faster_whisper.WhisperModel = Pinned


# -- WhisperLiveKit -----------------------------------------------------------------------------------------

class WhisperLiveKit:
    """WhisperLiveKit's AudioProcessor transcription loop, synchronous: VAC splits the fed audio into speech
    and silence events, then each queued item is one processor call (speech: insert + process_iter)."""

    def __init__(self, policy: str, name: str, fw: Path, hf: Path | None, args, clock: Clock, events: Events):
        pin_faster_whisper_threads(args.threads)
        from whisperlivekit.config import WhisperLiveKitConfig
        from whisperlivekit.core import TranscriptionEngine, online_factory

        fields = dict(lan=args.language, vac=not args.no_vac, warmup_file=str(WARMUP), diarization=False)
        if policy == "localagreement":
            fields.update(backend_policy="localagreement", backend="faster-whisper", model_dir=str(fw))
        else:
            if hf is None:
                raise SystemExit("wlk-simulstreaming needs the transformers checkpoint beside the CTranslate2 folder")
            fields.update(backend_policy="simulstreaming", decoder_model_path=str(named_checkpoint(name, hf)),
                          custom_alignment_heads=alignment_heads(hf))
            if args.simul_encoder == "faster-whisper":
                fields.update(backend="faster-whisper", encoder_model_path=str(fw))
            else:
                fields.update(backend="whisper", disable_fast_encoder=True)
        config = WhisperLiveKitConfig(**fields)
        self.engine = TranscriptionEngine(config=config)
        self.online = online_factory(self.engine.args, self.engine.asr)
        self.vad = None
        if config.vac:
            from whisperlivekit.silero_vad_iterator import FixedVADIterator, OnnxWrapper, load_jit_vad

            model = OnnxWrapper(session=self.engine.vac_session) if self.engine.vac_session else load_jit_vad()
            self.vad = FixedVADIterator(model)
        self.clock, self.events = clock, events
        self.queue: list = []
        self.samples = 0
        self.silence_start = 0.0 if self.vad else None  # WhisperLiveKit opens the session in silence under VAC
        self.stream_time = 0.0
        self.last_end = 0.0
        c = config
        self.settings = {"policy": policy, "min_chunk_size_s": c.min_chunk_size, "vac": c.vac,
                         "vac_threshold": 0.5 if c.vac else None, "warmup": WARMUP.name}
        if policy == "localagreement":
            self.settings.update(backend="faster-whisper", beam_size=5, word_timestamps=True,
                                 buffer_trimming=c.buffer_trimming, buffer_trimming_sec=c.buffer_trimming_sec,
                                 confidence_validation=c.confidence_validation, cpu_threads=args.threads,
                                 compute_type=self.engine.asr.model.model.compute_type)
        else:
            asr = self.engine.asr
            self.settings.update(encoder=asr.encoder_backend, frame_threshold=c.frame_threshold, beams=c.beams,
                                 decoder_type=asr.decoder_type, audio_max_len_s=c.audio_max_len,
                                 audio_min_len_s=c.audio_min_len, alignment_heads="generation_config",
                                 cif_ckpt_path=c.cif_ckpt_path,  # none by default: CIF end-of-word detection off
                                 decoder_dtype=str(next(asr.shared_model.parameters()).dtype),
                                 encoder_compute_type=asr.fw_encoder.model.compute_type if asr.fw_encoder else "torch",
                                 torch_threads=args.threads)

    def feed(self, pcm: np.ndarray):
        """AudioProcessor._process_pcm_array: speech goes to the queue, VAD boundaries become silence events."""
        if self.vad is None:
            self.queue.append(pcm)
            return
        first = self.samples
        self.samples += len(pcm)
        last = 0
        for event in self.vad(pcm) or []:
            if "start" in event and self.silence_start is not None:
                at = min(max(int(event["start"]), first), self.samples) - first
                self.queue.append(("end", (first + at) / SR - self.silence_start))
                self.silence_start, last = None, at
            if "end" in event and self.silence_start is None:
                at = min(max(int(event["end"]), first), self.samples) - first
                if at > last:
                    self.queue.append(pcm[last:at])
                self.queue.append(("start",))
                self.silence_start, last = (first + at) / SR, at
        if self.silence_start is None and last < len(pcm):
            self.queue.append(pcm[last:])

    def process(self):
        """AudioProcessor.transcription_processor over what is queued: consecutive speech is one call."""
        while self.queue:
            item = self.queue.pop(0)
            if isinstance(item, np.ndarray):
                while self.queue and isinstance(self.queue[0], np.ndarray):
                    item = np.concatenate([item, self.queue.pop(0)])
                self.stream_time += len(item) / SR
                self.online.insert_audio_chunk(item, self.stream_time)
                self._emit(self.clock.run(self.online.process_iter)[0])
            elif item[0] == "start":
                self._emit(self.clock.run(self.online.start_silence)[0])
            else:  # silence ended: zeros for a short pause, a reset after >= 5 s (no inference)
                self.stream_time += item[1]
                self.clock.run(self.online.end_silence, item[1], self.last_end, call=False)

    def finish(self):
        if self.silence_start is not None and self.vad is not None:  # the trailing pause is closed first
            self.queue.append(("end", self.samples / SR - self.silence_start))
        self.process()
        final = self.online.finish if hasattr(self.online, "finish") else self.online.start_silence
        self._emit(self.clock.run(final)[0], final=True)

    def _emit(self, tokens, final: bool = False):
        if tokens:
            self.last_end = tokens[-1].end
            self.events.commit("".join(t.text for t in tokens),
                               [[round(t.start, 3), round(t.end, 3), t.text.strip()] for t in tokens])
        self.events.show("" if final else self.online.get_buffer().text)


# -- whisper-live -------------------------------------------------------------------------------------------

class _Socket:
    """whisper-live sends everything to its client's websocket; the events come from its transcript here."""

    def send(self, message):
        pass

    def close(self):
        pass


class WhisperLive:
    def __init__(self, name: str, fw: Path, args, clock: Clock, events: Events):
        from whisper_live.backend import base
        from whisper_live.backend.faster_whisper_backend import ServeClientFasterWhisper
        from whisper_live.transcriber.transcriber_faster_whisper import WhisperModel

        # its loop sleeps 0.1 s after a repeated output: on the virtual clock, not the CPU
        base.time = types.SimpleNamespace(time=time.time, sleep=clock.sleep)
        # ServeClientFasterWhisper.__init__ without its model load and transcription thread: the base state,
        # then the fields that __init__ sets from its client's default options
        client = ServeClientFasterWhisper.__new__(ServeClientFasterWhisper)
        base.ServeClientBase.__init__(client, "bench", _Socket(), send_last_n_segments=10, no_speech_thresh=0.45,
                                      clip_audio=False, same_output_threshold=10)
        client.language, client.task, client.initial_prompt, client.hotwords = args.language, "transcribe", None, None
        client.vad_parameters, client.use_vad, client.compute_type = {"threshold": 0.5}, True, "int8"
        client.transcriber = WhisperModel(str(fw), device="cpu", compute_type=client.compute_type,
                                          cpu_threads=args.threads, local_files_only=True)
        client.transcriber.transcribe(load_audio(WARMUP)[: 2 * SR], language=args.language,
                                      vad_filter=True)  # warm-up, as the WhisperLiveKit systems get
        self.client, self.clock, self.events = client, clock, events
        self.done = 0  # segments of client.transcript already reported
        # policy: re-transcribe the pending audio (>= 1 s); a segment is final once Whisper closes it (not the
        # last) or after same_output_threshold identical outputs, and the pending audio then starts after it
        self.settings = {"policy": "completed-segments", "min_pending_s": 1.0,
                         "use_vad": True, "no_speech_thresh": 0.45, "same_output_threshold": 10,
                         "compute_type": client.compute_type, "cpu_threads": args.threads,
                         "max_buffer_s": client.MAX_BUFFER_DURATION_S, "warmup": WARMUP.name}

    def feed(self, pcm: np.ndarray):
        self.client.add_frames(pcm)

    def process(self):
        """One pass of ServeClientBase.speech_to_text's loop."""
        c = self.client
        pending, duration = c.get_audio_chunk_for_processing()
        if duration < 1.0:
            return
        result = self.clock.run(c.transcribe_audio, pending)
        if result is None:  # its loop skips such audio
            c.timestamp_offset += duration
            return
        self.clock.run(c.handle_transcription_output, result, duration, call=False)
        self._emit()

    def finish(self):
        tail = self.client.current_out if self.client.current_out.strip() else ""
        self._emit(tail)
        self.events.show("")

    def _emit(self, tail: str | None = None):
        for seg in self.client.transcript[self.done:]:
            self.events.commit(seg["text"], [[float(seg["start"]), float(seg["end"]), seg["text"].strip()]])
        self.done = len(self.client.transcript)
        if tail is None:
            self.events.show(self.client.current_out)
        elif tail:
            self.events.commit(tail, [])


# -- driver -------------------------------------------------------------------------------------------------

def load_audio(path: Path) -> np.ndarray:
    import soundfile as sf

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != SR:
        import soxr  # installed with librosa in the anchors' venv

        audio = soxr.resample(audio, rate, SR).astype(np.float32)
    return np.ascontiguousarray(audio)


def replay(system, audio: np.ndarray, clock: Clock):
    """streaming.simulate's clock: feed what has arrived, process, repeat; then finish."""
    step = int(SR * CHUNK_S)
    pos = 0
    while pos < len(audio):
        clock.now = max(clock.now, min(len(audio), pos + step) / SR)  # wait for the next chunk
        arrived = len(audio) if clock.now * SR >= len(audio) else int(clock.now / CHUNK_S + 1e-9) * step
        upto = min(len(audio), max(pos + step, arrived))
        clock.run(system.feed, audio[pos:upto], call=False)
        pos = upto
        system.process()
    system.finish()


def versions() -> dict:
    out = {}
    for package in VERSIONED:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out


def run(system_name: str, model_dir: Path, audio_path: Path, language: str, threads: int,
        no_vac: bool = False, simul_encoder: str = "faster-whisper") -> dict:
    """One anchor over one file: the JSON the streaming bench reads."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)
    name, fw, hf = model_sources(model_dir.expanduser())
    args = argparse.Namespace(language=language, threads=threads, no_vac=no_vac, simul_encoder=simul_encoder)
    clock = Clock()
    events = Events(clock)
    if system_name == "whisper-live":
        system = WhisperLive(name, fw, args, clock, events)
    else:
        system = WhisperLiveKit(system_name.split("-", 1)[1], name, fw, hf, args, clock, events)
    audio = load_audio(audio_path)
    replay(system, audio, clock)
    return {
        "system": system_name, "policy": system.settings["policy"], "model": name,
        "committed": events.committed, "tentative": events.tentative,
        "text": " ".join("".join(events.raw).split()),
        "compute_s": round(clock.compute_s, 3), "cpu_s": round(clock.cpu_s, 3), "updates": clock.calls,
        "duration_s": round(len(audio) / SR, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "finished_at": round(clock.now, 3), "versions": versions(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],  # compute_s is wall time: other work on the CPU inflates it
        "settings": {**system.settings, "chunk_s": CHUNK_S, "language": language, "threads": threads,
                     "model_dir": str(model_dir), "ct2": str(fw), "checkpoint": str(hf) if hf else None},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--system", required=True, choices=SYSTEMS)
    p.add_argument("--model-dir", required=True, type=Path,
                   help="edge-asr model folder, <name>-ct2 folder or <name>-transformers checkpoint")
    p.add_argument("--audio", required=True, type=Path)
    p.add_argument("--language", default="en")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-vac", action="store_true", help="WhisperLiveKit without its voice activity controller")
    p.add_argument("--simul-encoder", choices=("faster-whisper", "whisper"), default="faster-whisper",
                   help="SimulStreaming's encoder: CTranslate2 (WhisperLiveKit's default here) or PyTorch")
    a = p.parse_args(argv)
    result = run(a.system, a.model_dir, a.audio, a.language, a.threads, a.no_vac, a.simul_encoder)
    sys.stdout.flush()
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
