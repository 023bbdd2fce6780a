"""`edge-asr bench boost`: domain-term boosting (``boost_terms``) against nothing and prompt ``hotwords``.

On a set of clips whose references contain listed terms (``--manifest``, ``--terms``; or ``--synthesize
DIR`` makes one with espeak-ng: 12 made-up terms in 24 sentences, several voices and rates) it reports,
per model and configuration (``none``, ``hotwords``, ``boost:W`` for each weight W):
- term recall: occurrences of a term in the reference also in the hypothesis (normalized words), and
  false alarms: occurrences in the hypothesis beyond the reference's,
- B-WER / U-WER: errors on the term words / on the other words of the same clips (insertions go to B
  when the inserted word is a term word), the contextual-biasing papers' split,
- WER on ordinary clips without terms (``--plain-manifest``, e.g. ../shared/audio English clips),
- looping clips (compression ratio > 2.4 or more than twice the reference's words + 5),
and the boost's cost: time per transcription of one clip with ``--timing-terms`` terms (the listed ones
plus made-up fillers) over time without, alternating A/B runs in one process, and the filter's own
share of the decode (its ``apply`` timed inside the same runs), which the shared CPU's noise barely moves.

    edge-asr bench boost --synthesize /tmp/boostset
    edge-asr bench boost --manifest /tmp/boostset/manifest.jsonl --terms /tmp/boostset/terms.txt \\
        --plain-manifest ../shared/audio/manifest.jsonl --model tiny.en-int8 --model base-int8 \\
        --weights 16,24 --out benchmarks/results/term-boost-CPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

TERMS = ("Zorvexa", "Draxiphen", "Quillomar", "Vethrin", "Torvalin", "Mireska", "Brondax", "Felquist",
         "Ostravane", "Yundrel", "Pexatrol", "Kalvoria")
SENTENCES = (
    "The new Zorvexa release fixed the memory leak in our servers.",
    "Please restart Zorvexa before the meeting tomorrow morning.",
    "The doctor prescribed Draxiphen twice a day with food.",
    "Side effects of Draxiphen are rare but can include headaches.",
    "We hiked along the Quillomar ridge until sunset.",
    "The Quillomar valley is famous for its apples.",
    "Our team moved the database to Vethrin last spring.",
    "Vethrin handles the billing for every customer.",
    "Torvalin scored twice in the second half of the game.",
    "The coach said Torvalin will play on Sunday.",
    "Mireska wrote a short report about the harbor.",
    "I borrowed the blue bicycle from Mireska yesterday.",
    "Add two spoons of Brondax to the warm water.",
    "The shop on the corner sells Brondax in large bottles.",
    "Professor Felquist will give the lecture on rivers.",
    "The Felquist method saves a lot of time in the lab.",
    "The train to Ostravane leaves at seven.",
    "She grew up in Ostravane near the old bridge.",
    "Yundrel is the name of the captain in that story.",
    "Ask Yundrel to send the invoice by Friday.",
    "Pexatrol keeps the engine clean in cold weather.",
    "The mechanic poured Pexatrol into the tank.",
    "The queen of Kalvoria visited the museum.",
    "Kalvoria exports wool, cheese and timber.",
)
# espeak-ng voices tiny.en reads best (en-gb, its Scottish and +f3 variants garble ordinary words).
VOICES = (("en-us", 160), ("en-us+m3", 150), ("en-029", 155), ("en-gb-x-rp", 165), ("en-us", 180))
SYLLABLES = ("zor", "vex", "dra", "phen", "quil", "mar", "veth", "rin", "tor", "val", "mir", "esk", "bron",
             "dax", "fel", "quist", "ost", "rav", "yun", "drel", "pex", "trol", "kal", "vor")


def synthesize(out: Path, second_voice_every: int = 2) -> Path:
    """Clips of SENTENCES with espeak-ng (one voice each, a second voice for every other sentence), a
    manifest.jsonl (audio, text, voice) and terms.txt in ``out``; returns the manifest's path."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, sentence in enumerate(SENTENCES):
        voices = [VOICES[i % len(VOICES)]]
        if i % second_voice_every == 0:
            voices.append(VOICES[(i + 3) % len(VOICES)])
        for voice, rate in voices:
            name = f"s{i:02d}_{voice}_{rate}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(out / name), sentence],
                           check=True, capture_output=True)
            rows.append({"audio": name, "text": sentence, "voice": voice, "rate": rate, "language": "en"})
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "terms.txt").write_text("# made-up terms (edge-asr bench boost --synthesize)\n" + "\n".join(TERMS) + "\n")
    return out / "manifest.jsonl"


def read_manifest(path: Path, language: str = "en", limit: int | None = None) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("language", "en") == language:
                row["path"] = str((path.parent / row["audio"]).resolve())
                rows.append(row)
    return rows[:limit]


def filler_terms(n: int, seed: int = 0) -> list[str]:
    """``n`` made-up terms of 2-3 syllables (deterministic), to time a long term list."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while len(out) < n:
        word = "".join(rng.choice(SYLLABLES, size=int(rng.integers(2, 4)))).capitalize()
        if word not in out:
            out.append(word)
    return out


def _words(text: str) -> list[str]:
    # The export's term matching (Whisper's English normalizer): one definition of a term hit, so the
    # export validation's term recall and this benchmark's agree on the same texts.
    from edge_asr_export.terms import words

    return words(text)


def term_scores(refs: Sequence[str], hyps: Sequence[str], terms: Sequence[str]) -> dict:
    """Term recall, B-WER and U-WER (jiwer's word alignment after Whisper's English normalizer)."""
    import jiwer

    from edge_asr_export.terms import positions

    term_words = [_words(t) for t in terms]
    term_vocab = {w for tw in term_words for w in tw}
    hits = occurrences = false_alarms = 0
    b_err = u_err = b_n = u_n = 0
    for ref, hyp in zip(refs, hyps):
        r, h = _words(ref), _words(hyp)
        is_term = [False] * len(r)
        for tw in term_words:
            n = len(tw)
            ref_pos, hyp_count = positions(r, tw), len(positions(h, tw))
            occurrences += len(ref_pos)
            hits += min(len(ref_pos), hyp_count)
            false_alarms += max(0, hyp_count - len(ref_pos))  # written where it was not said
            for i in ref_pos:
                is_term[i:i + n] = [True] * n
        b_n += sum(is_term)
        u_n += len(r) - sum(is_term)
        if not r:
            u_err += len(h)
            continue
        out = jiwer.process_words(" ".join(r), " ".join(h) if h else "")
        for chunk in out.alignments[0]:
            if chunk.type == "equal":
                continue
            if chunk.type in ("substitute", "delete"):
                flags = is_term[chunk.ref_start_idx:chunk.ref_end_idx]
                b_err += sum(flags)
                u_err += len(flags) - sum(flags)
            if chunk.type == "insert":
                for w in h[chunk.hyp_start_idx:chunk.hyp_end_idx]:
                    if w in term_vocab:
                        b_err += 1
                    else:
                        u_err += 1
    return {"term_recall": round(hits / occurrences, 4) if occurrences else None, "term_hits": hits,
            "term_occurrences": occurrences, "term_false_alarms": false_alarms, "b_wer": round(b_err / b_n, 4) if b_n else None,
            "u_wer": round(u_err / u_n, 4) if u_n else None, "term_words": b_n, "other_words": u_n}


def looping(ref: str, hyp: str) -> bool:
    data = hyp.encode()
    ratio = len(data) / len(zlib.compress(data)) if data else 0.0
    return ratio > 2.4 or len(hyp.split()) > 2 * len(ref.split()) + 5


def config_options(config: str, terms: Sequence[str]) -> dict:
    if config == "none":
        return {}
    if config == "hotwords":
        return {"hotwords": ", ".join(terms)}
    if config.startswith("boost:"):
        return {"boost_terms": tuple(terms), "boost_weight": float(config.split(":", 1)[1])}
    if config.startswith("hotwords+"):
        return {**config_options("hotwords", terms), **config_options(config.split("+", 1)[1], terms)}
    raise SystemExit(f"unknown configuration {config!r}: none, hotwords, boost:WEIGHT or hotwords+boost:WEIGHT")


def run_config(model, rows: list[dict], options: dict) -> tuple[list[str], float]:
    hyps, t0 = [], time.perf_counter()
    for row in rows:
        hyps.append(model.transcribe(row["path"], language="en", **options).text)
    return hyps, time.perf_counter() - t0


def timing(model, clip: str, terms: Sequence[str], repeats: int) -> dict:
    """Alternating runs without / with the boost on one clip (greedy, one temperature, so both decode the
    same number of steps unless the text changes); the TermBoost filter's own time measured inside."""
    from edge_asr import term_boost

    spent = [0.0]
    original = term_boost.TermBoost.apply

    def timed_apply(self, logits, tokens):
        t = time.perf_counter()
        original(self, logits, tokens)
        spent[0] += time.perf_counter() - t

    base = {"language": "en", "temperature": 0.0}
    boosted = {**base, "boost_terms": tuple(terms)}
    model.transcribe(clip, **base)  # warm-up (graph arenas, the trie cache)
    model.transcribe(clip, **boosted)
    off, on, filter_share, texts = [], [], [], {}
    term_boost.TermBoost.apply = timed_apply
    try:
        for i in range(repeats):
            for name in (("off", "on") if i % 2 == 0 else ("on", "off")):
                spent[0] = 0.0
                t = time.perf_counter()
                text = model.transcribe(clip, **(boosted if name == "on" else base)).text
                elapsed = time.perf_counter() - t
                texts[name] = text
                (on if name == "on" else off).append(elapsed)
                if name == "on":
                    filter_share.append(spent[0] / elapsed)
    finally:
        term_boost.TermBoost.apply = original
    t0 = time.perf_counter()
    term_boost.TermTrie(model.tokenizer, term_boost.parse_terms(terms, term_boost.DEFAULT_BOOST_WEIGHT))
    build_s = time.perf_counter() - t0
    ratios = [b / a for a, b in zip(off, on)]
    return {"clip": Path(clip).name, "terms": len(terms), "repeats": repeats,
            "median_s_without": round(statistics.median(off), 4), "median_s_with": round(statistics.median(on), 4),
            "median_ratio_with_over_without": round(statistics.median(ratios), 4),
            "filter_share_of_decode_median": round(statistics.median(filter_share), 4),
            "trie_build_s": round(build_s, 4), "same_text": texts.get("on") == texts.get("off")}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="edge-asr bench boost", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synthesize", type=Path, metavar="DIR",
                   help="write the made-up term set (espeak-ng clips, manifest.jsonl, terms.txt) to DIR and exit")
    p.add_argument("--manifest", type=Path, help="clips whose references hold the terms (jsonl: audio, text)")
    p.add_argument("--terms", type=Path, help="terms file: one term a line, # comments")
    p.add_argument("--plain-manifest", type=Path, help="ordinary clips (no terms) for the cost on other words")
    p.add_argument("--plain-limit", type=int, default=6, help="at most this many ordinary clips (default 6)")
    p.add_argument("--model", action="append", help="model name or folder (repeatable; default tiny.en-int8)")
    p.add_argument("--weights", default="16,24", help="boost weights to compare (default 16,24)")
    p.add_argument("--no-hotwords", action="store_true", help="skip the hotwords (prompt) configuration")
    p.add_argument("--configs", help="comma-separated configurations instead of none, hotwords and boost:W for "
                                     "each weight (none | hotwords | boost:W | hotwords+boost:W)")
    p.add_argument("--no-timing", action="store_true", help="skip the cost measurement")
    p.add_argument("--timing-clip", type=Path, help="clip for the cost measurement (default: the first plain clip)")
    p.add_argument("--timing-terms", type=int, default=100, help="terms in the cost measurement (default 100)")
    p.add_argument("--timing-repeats", type=int, default=6, help="A/B pairs in the cost measurement (default 6)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: onnxruntime's)")
    p.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    args = p.parse_args(argv)
    if args.synthesize:
        print(synthesize(args.synthesize))
        return 0
    if not args.manifest or not args.terms:
        p.error("give --manifest and --terms (or --synthesize DIR first)")

    from edge_asr import load_model
    from edge_asr.cli_options import read_lines_file

    from .machine import machine_info

    terms = read_lines_file(str(args.terms))
    rows = read_manifest(args.manifest)
    plain = read_manifest(args.plain_manifest, limit=args.plain_limit) if args.plain_manifest else []
    configs = args.configs.split(",") if args.configs else (
        ["none"] + ([] if args.no_hotwords else ["hotwords"]) + [f"boost:{w}" for w in args.weights.split(",")])
    report = {"machine": machine_info(), "terms": terms, "clips": len(rows), "plain_clips": [r["audio"] for r in plain],
              "configs": configs, "models": {}}
    for name in args.model or ["tiny.en-int8"]:
        model = load_model(name, threads=args.threads)
        entry: dict = {"results": {}}
        for config in configs:
            options = config_options(config, terms)
            hyps, seconds = run_config(model, rows, options)
            scores = term_scores([r["text"] for r in rows], hyps, terms)
            res = {**scores, "looping_clips": sum(looping(r["text"], h) for r, h in zip(rows, hyps)),
                   "seconds": round(seconds, 2), "hypotheses": hyps}
            if plain:
                from edge_asr.scoring import wer

                plain_hyps, plain_s = run_config(model, plain, options)
                res["plain_wer"] = round(wer([r["text"] for r in plain], plain_hyps, "en"), 4)
                res["plain_looping_clips"] = sum(looping(r["text"], h) for r, h in zip(plain, plain_hyps))
                res["plain_seconds"] = round(plain_s, 2)
            entry["results"][config] = res
            print(f"{name} {config:10s} recall {scores['term_hits']}/{scores['term_occurrences']} "
                  f"B-WER {scores['b_wer']} U-WER {scores['u_wer']} plain WER {res.get('plain_wer')} "
                  f"loops {res['looping_clips']} {seconds:.1f} s", flush=True)
        if not args.no_timing:
            clip = args.timing_clip or (Path(plain[0]["path"]) if plain else Path(rows[0]["path"]))
            timing_terms = (list(terms) + filler_terms(args.timing_terms))[:args.timing_terms]
            entry["timing"] = timing(model, str(clip), timing_terms, args.timing_repeats)
            print(f"{name} timing {entry['timing']}", flush=True)
        report["models"][name] = entry
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        # OUT.json, not with_suffix: "term-boost-tiny.en" has a dot of its own
        Path(f"{args.out}.json").write_text(json.dumps(report, indent=1) + "\n")
        Path(f"{args.out}.md").write_text(markdown(report))
    return 0


def markdown(report: dict) -> str:
    m = report["machine"]
    cpu = m.get("cpu", {})
    lines = [f"# Term boost: {len(report['terms'])} terms, {report['clips']} clips",
             "", f"CPU: {cpu.get('model')} ({', '.join(cpu.get('key_flags', []))}; {cpu.get('logical_cores')} logical "
                 f"cores), load average at start {m.get('load_average_start')}: a shared machine, times are noisy "
                 "(compare ratios within one run). Greedy, default temperature fallback; plain = ordinary clips "
                 f"without terms ({', '.join(report.get('plain_clips', []))}).", "",
             *([report["note"], ""] if report.get("note") else []),
             "| model | config | term recall | false alarms | B-WER | U-WER | plain WER | loops | s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in report["models"].items():
        for config, r in entry["results"].items():
            lines.append(f"| {name} | {config} | {r['term_hits']}/{r['term_occurrences']} ({r['term_recall']:.0%}) | "
                         f"{r.get('term_false_alarms', '')} | "
                         f"{r['b_wer']:.1%} | {r['u_wer']:.1%} | "
                         f"{'' if r.get('plain_wer') is None else format(r['plain_wer'], '.1%')} | "
                         f"{r['looping_clips']} | {r['seconds']} |")
    lines += ["", "| model | terms | median s without | median s with | ratio (median of A/B pairs) | filter share | trie build s |",
              "|---|---|---|---|---|---|---|"]
    for name, entry in report["models"].items():
        if "timing" not in entry:
            continue
        t = entry["timing"]
        lines.append(f"| {name} | {t['terms']} | {t['median_s_without']} | {t['median_s_with']} | "
                     f"{t['median_ratio_with_over_without']} | {t['filter_share_of_decode_median']:.2%} | {t['trie_build_s']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
