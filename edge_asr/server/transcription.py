"""``POST /v1/audio/transcriptions`` and ``/v1/audio/translations``: OpenAI's multipart API.

OpenAI's fields: ``file`` (required), ``model`` (a cached model; ``whisper-1`` or none: the default),
``language``, ``prompt``, ``temperature``, ``response_format`` (json | text | srt | vtt | verbose_json),
``timestamp_granularities[]`` (segment | word; word turns on word timing), ``stream`` (false only).
Every other field is a TranscribeOptions field by name (``beam_size``, ``vad_filter``, ``hotwords``,
``word_timestamps``, ``condition_on_previous_text``, ...) or a VadOptions field as ``vad_<name>``, derived
from the dataclasses (fields.py), so they match the Python API and the CLI. A list field may come as one
comma-separated value, or repeated, or as ``name[]`` parts (the openai client's ``extra_body`` lists): a
repeated or ``[]`` value is one item, commas included. ``temperature`` follows
OpenAI: one value t starts the fallback ladder at t (t, t+0.2, ... up to 1; 0 = the default ladder);
comma-separated values give the ladder itself.

Order of checks (cheap first, nothing queued that will fail): form and fields (400), model (404),
option caps and what the model supports (400), the upload's header (400/413), then a decode slot
(503 when the queue is full), where the audio is decoded and transcribed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..options import TranscribeOptions
from ..vad import VadOptions
from .errors import RequestError
from .fields import RequestField, list_name, parse_fields, request_fields
from .formats import GRANULARITIES, RESPONSE_FORMATS, render
from .limits import check_request_options
from .uploads import check_upload, decode_upload

# Request fields from the dataclasses: the task comes from the endpoint, initial_prompt is OpenAI's prompt.
TRANSCRIBE_FIELDS = request_fields(TranscribeOptions, skip={"task"}, rename={"initial_prompt": "prompt"})
VAD_FIELDS = request_fields(VadOptions, prefix="vad_")
OPENAI_ONLY = {
    "model": "a cached model (GET /v1/models); whisper-1 or none: the server's default",
    "response_format": f"one of {', '.join(RESPONSE_FORMATS)}",
    "timestamp_granularities[]": "segment and/or word (word timing) for verbose_json",
    "stream": "false (streamed responses: use the WebSocket /v1/audio/stream)",
}
FILE_FIELD = "file"
MAX_TEXT_FIELD_BYTES = 256 * 1024
TEMPERATURE_STEP = 0.2  # openai/whisper's temperature_increment_on_fallback


@dataclass(frozen=True)
class AudioRequest:
    model: str | None
    file: UploadFile
    options: TranscribeOptions
    response_format: str
    granularities: tuple[str, ...]


def field_names() -> list[str]:
    return sorted({FILE_FIELD, *OPENAI_ONLY, *TRANSCRIBE_FIELDS, *VAD_FIELDS})


def _ladder(temperature: Any) -> Any:
    """OpenAI's single temperature t -> the fallback ladder from t; a sequence is used as given."""
    if isinstance(temperature, tuple):
        return temperature
    t = float(temperature)
    if not 0.0 <= t <= 1.0:
        return t
    steps = int(round((1.0 - t) / TEMPERATURE_STEP + 1e-9))
    return tuple(round(t + i * TEMPERATURE_STEP, 4) for i in range(steps + 1))


def parse_form(form: FormData, task: str) -> AudioRequest:
    """The request's model, upload, options and output format, or a typed 4xx error naming the field."""
    texts: dict[str, list[str]] = {}
    listed: set[str] = set()  # list fields sent as name[] (the openai client's form of a list)
    upload: UploadFile | None = None
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name != FILE_FIELD:
                raise RequestError(f"field {name!r} holds a file; the audio goes in the {FILE_FIELD!r} field",
                                   param=name)
            upload = value
        else:
            if name == FILE_FIELD:
                raise RequestError(f"field {FILE_FIELD!r} must be a file upload (multipart/form-data with a "
                                   f"filename), not text", param=FILE_FIELD)
            base = list_name(name, TRANSCRIBE_FIELDS) or list_name(name, VAD_FIELDS)
            if base is not None:
                name = base
                listed.add(base)
            texts.setdefault("timestamp_granularities[]" if name == "timestamp_granularities" else name,
                             []).append(value)
    if upload is None:
        raise RequestError(f"missing the audio: send multipart/form-data with the file in the {FILE_FIELD!r} field "
                           f"(fields given: {', '.join(sorted(texts)) or 'none'})", param=FILE_FIELD)
    unknown = sorted(set(texts) - set(field_names()))
    if unknown:
        raise RequestError(f"unknown field(s) {', '.join(map(repr, unknown))}; valid: {', '.join(field_names())}",
                           param=unknown[0])

    def one(name: str, default: str | None) -> str | None:
        values = texts.pop(name, None)
        if values is None:
            return default
        if len(values) > 1:
            raise RequestError(f"field {name!r} was given {len(values)} times; give it once", param=name)
        return values[0].strip()

    model = one("model", None)
    response_format = one("response_format", "json") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise RequestError(f"response_format must be one of {', '.join(RESPONSE_FORMATS)}, not {response_format!r}",
                           param="response_format")
    if (one("stream", "false") or "false").lower() not in ("false", "0", "no"):
        raise RequestError("streamed responses are not supported here; stream live audio over the WebSocket "
                           "/v1/audio/stream instead", param="stream")
    granularities = tuple(g.strip() for v in texts.pop("timestamp_granularities[]", []) for g in v.split(",")
                          if g.strip())
    bad = sorted(set(granularities) - set(GRANULARITIES))
    if bad:
        raise RequestError(f"timestamp_granularities[] takes {' and '.join(GRANULARITIES)}, not {', '.join(bad)}",
                           param="timestamp_granularities[]")
    options = _options(texts, task, word_timing="word" in granularities, listed=listed)
    return AudioRequest(model, upload, options, response_format, granularities)


def _split(texts: dict[str, list[str]], specs: dict[str, RequestField]) -> dict[str, list[str]]:
    return {k: v for k, v in texts.items() if k in specs}


def _options(texts: dict[str, list[str]], task: str, word_timing: bool, listed: set[str] = frozenset()
             ) -> TranscribeOptions:
    values = parse_fields(_split(texts, TRANSCRIBE_FIELDS), TRANSCRIBE_FIELDS, listed)
    vad = parse_fields(_split(texts, VAD_FIELDS), VAD_FIELDS, listed)
    if "temperature" in values:
        values["temperature"] = _ladder(values["temperature"])
    if word_timing:
        values["word_timestamps"] = True
    if vad:
        values["vad_options"] = VadOptions(**vad)
    return TranscribeOptions(task=task, **values)


async def handle(request: Request, task: str) -> Response:
    runtime = request.app.state.runtime
    config = runtime.config
    runtime.check_open()
    # Room for the largest boost list the server accepts as repeated parts (boost_terms[] per term), on top
    # of the other fields; the list's own cap (check_request_options) then answers with a 400 naming it.
    form = await request.form(max_files=1, max_fields=64 + config.max_boost_terms,
                              max_part_size=MAX_TEXT_FIELD_BYTES)
    try:
        req = parse_form(form, task)
        entry = await run_in_threadpool(runtime.models.get, req.model)
        check_request_options(req.options, config)
        entry.model.check_options(req.options)
        await run_in_threadpool(check_upload, req.file.file, config.max_audio_s)

        def decode():
            return entry.model.transcribe(decode_upload(req.file.file, config.max_audio_s), req.options)

        result = await entry.slot.run(decode)
    finally:
        await form.close()
    body, media_type = render(result, req.response_format, task, req.granularities)
    if isinstance(body, dict):
        return JSONResponse(body)
    return Response(body, media_type=media_type)


async def transcriptions(request: Request) -> Response:
    return await handle(request, "transcribe")


async def translations(request: Request) -> Response:
    return await handle(request, "translate")


def describe() -> dict:
    """The fields an upload takes, with types, defaults and help (GET /v1/options)."""
    return {"openai": [{"name": FILE_FIELD, "type": "file", "help": "the audio (any format edge-asr decodes)"}]
            + [{"name": k, "help": v} for k, v in OPENAI_ONLY.items()],
            "options": [f.describe() for f in TRANSCRIBE_FIELDS.values()],
            "vad": [f.describe() for f in VAD_FIELDS.values()]}
