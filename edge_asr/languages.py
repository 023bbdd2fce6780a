"""Whisper's languages: code -> English name, and a language given by code or name -> its code.

The one table of language names (Whisper's own, with its aliases): options accept "en", "English",
"german", "Castilian"; which codes a model can decode is its manifest's token table (tokenizer.py)."""

from __future__ import annotations

import difflib

from .errors import DecodingError

# openai/whisper's tokenizer.LANGUAGES, in its order (the language tokens' order).
LANGUAGES: dict[str, str] = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer", "sn": "shona",
    "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian", "be": "belarusian",
    "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao", "uz": "uzbek",
    "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk", "mt": "maltese",
    "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan", "tl": "tagalog", "mg": "malagasy",
    "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala", "ha": "hausa", "ba": "bashkir",
    "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}

# Other names openai/whisper accepts for some of them.
ALIASES: dict[str, str] = {
    "burmese": "my", "valencian": "ca", "flemish": "nl", "haitian": "ht", "letzeburgesch": "lb", "pushto": "ps",
    "panjabi": "pa", "moldavian": "ro", "moldovan": "ro", "sinhalese": "si", "castilian": "es", "mandarin": "zh",
}

_CODES: dict[str, str] = {**{name: code for code, name in LANGUAGES.items()}, **ALIASES,
                          **{code: code for code in LANGUAGES}}


def normalize_language(language: str) -> str:
    """The code of a known code or name (any case); anything else unchanged, for the model's own check
    (tokenizer.py) to refuse where the caller handles option errors."""
    try:
        return language_code(language)
    except DecodingError:
        return language


def language_code(language: str) -> str:
    """The code of ``language`` given as a code ("de") or a name ("German", "castilian"), in any case.
    Raises DecodingError (a ValueError) naming close matches when it is neither."""
    if not isinstance(language, str):
        raise DecodingError(f"language must be a code such as 'en' or a name such as 'English', not {language!r}")
    key = " ".join(language.strip().lower().replace("_", " ").split())
    code = _CODES.get(key)
    if code is not None:
        return code
    close = difflib.get_close_matches(key, list(_CODES), n=3, cutoff=0.6)
    hint = ("did you mean " + " or ".join(f"{c!r} ({_CODES[c]})" if c != _CODES[c] else repr(c) for c in close)
            + "? " if close else "")
    raise DecodingError(f"unknown language code {language!r}: {hint}give a Whisper language code such as 'en' or "
                        f"its name such as 'English' (edge_asr.languages.LANGUAGES lists them)")
