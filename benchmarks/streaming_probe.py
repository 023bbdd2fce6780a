"""The report's "streaming" section: first-partial and commit latency, once edge_asr.streaming exists.

The streaming runtime is being written beside this bench; until it can be imported the section is
reported as skipped with the reason, and its fields are fixed now so later results stay comparable:
``first_partial_s`` (audio start to the first partial hypothesis) and ``commit_s`` (end of an utterance
to its committed text), both as {median, p90, n}, per edge-asr configuration id.
"""

from __future__ import annotations

import importlib

FIELDS = ("first_partial_s", "commit_s")


def streaming_section() -> dict:
    try:
        importlib.import_module("edge_asr.streaming")
    except ImportError as e:
        return {"status": "skipped", "reason": f"edge_asr.streaming is not importable ({e}); streaming latency "
                f"will be measured once the streaming runtime lands", "fields": list(FIELDS), "configs": {}}
    # The module exists but its API is not settled here yet: say so rather than guess at it.
    return {"status": "skipped", "reason": "edge_asr.streaming is importable but the bench's streaming probe "
            "(first-partial and commit latency) is not implemented yet", "fields": list(FIELDS), "configs": {}}
