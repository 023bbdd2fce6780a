"""The fidelity reference stored in every exported folder: what PyTorch (fp32) says on one short clip.

The runtime's fidelity check (edge_asr.fidelity) decodes the same clip on the user's CPU or GPU and
measures the drift against this: a model that passed validation on the exporting machine can still
drift elsewhere (int8 kernels differ between CPUs), and only the machine that runs it can tell.

Stored (``fidelity_reference.npz``, ~0.3 MB): the clip as 16-bit PCM, the prompt (start-of-transcript
sequence without timestamps), PyTorch's greedy tokens, and for every predicted position (each token,
then <|endoftext|>) the top-k token ids and their log-probabilities under PyTorch fp32, teacher-forced.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_asr.fidelity import REFERENCE_FILE, TOP_K
from edge_asr.constants import SAMPLE_RATE
from edge_asr.constants import N_SAMPLES
from edge_asr.features import log_mel_spectrogram, pad_or_trim
from edge_asr.tokenizer import Tokenizer

from .validate import VALIDATION_MAX_TOKENS, Clip, _hf_generate


def bundled_clips() -> list[Clip]:
    """The project's own synthesized sample, with its text: the default validation clip."""
    from edge_asr.audio import load_audio

    assets = Path(__file__).resolve().parent.parent / "edge_asr" / "assets"
    if not assets.is_dir():  # installed (non-editable): assets live inside the edge_asr package
        import edge_asr

        assets = Path(edge_asr.__file__).parent / "assets"
    return [Clip("bundled_sample", load_audio(assets / "sample.flac"), (assets / "sample.txt").read_text().strip())]


def _pytorch_language(hf_model, tok: Tokenizer, mel: np.ndarray) -> str | None:
    """PyTorch's own language guess (the most likely language token after <|startoftranscript|>)."""
    import torch

    if not tok.multilingual:
        return None
    with torch.no_grad():
        logits = hf_model(input_features=torch.from_numpy(mel),
                          decoder_input_ids=torch.tensor([[tok.special.sot]])).logits[0, -1].numpy()
    codes = list(tok.special.languages)
    ids = [tok.special.languages[c] for c in codes]
    return codes[int(np.argmax(logits[ids]))]


def write_reference(hf_model, folder: Path, clip: Clip) -> dict:
    """Compute the reference for ``clip`` with the PyTorch model, write it into ``folder`` (which holds
    the tokenizer and manifest already) and return the manifest's ``fidelity`` entry."""
    import torch
    import transformers

    from edge_asr.manifest import read_manifest

    transformers.logging.set_verbosity_error()  # generate()'s length notes are not for our users
    manifest = read_manifest(folder)
    tok = Tokenizer(folder / "tokenizer.json", manifest.tokens, manifest.multilingual)
    audio = np.clip(clip.audio[:N_SAMPLES], -1.0, 1.0)
    pcm = np.round(audio * 32767).astype(np.int16)
    # The mel of the stored PCM (not of the float clip), so the check feeds exactly what PyTorch saw.
    mel = pad_or_trim(log_mel_spectrogram(pcm.astype(np.float32) / 32767, manifest.dims.n_mels, padding=N_SAMPLES))[None]
    language = _pytorch_language(hf_model, tok, mel)
    prompt = tok.sot_sequence(language, "transcribe", timestamps=False)
    # The stored prompt fixes the path the fidelity check replays; transcribe whatever the model's default task.
    tokens = _hf_generate(hf_model, tok, mel, language, "transcribe", VALIDATION_MAX_TOKENS)
    forced = np.array([prompt + tokens], dtype=np.int64)
    with torch.no_grad():
        logits = hf_model(input_features=torch.from_numpy(mel),
                          decoder_input_ids=torch.from_numpy(forced)).logits[0].double()
    logprobs = torch.log_softmax(logits, dim=-1)[len(prompt) - 1:]  # predictions of tokens..., then eot
    top = torch.topk(logprobs, TOP_K, dim=-1)
    np.savez_compressed(
        folder / REFERENCE_FILE, pcm=pcm, prompt=np.array(prompt, np.int64), tokens=np.array(tokens, np.int64),
        topk_ids=top.indices.numpy().astype(np.int32), topk_logprobs=top.values.numpy().astype(np.float32),
        language=np.array(language or ""))
    return {"file": REFERENCE_FILE, "clip": clip.name, "seconds": round(len(pcm) / SAMPLE_RATE, 2),
            "language": language, "tokens": len(tokens), "top_k": TOP_K, "by": "pytorch fp32 (transformers), greedy"}
