"""The desktop examples (examples/caption_app, examples/transcribe_file_app) run for real: Qt's offscreen
platform, real tiny.en int8 through the ONNX path, text read back from the widgets, screenshots saved.

Skips with the reason when PySide6 is not installed (extra `app`, also in `test`), when Qt cannot start
(missing system libraries: scripts/system_deps.sh), or when no tiny.en model can be had."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO, SAMPLE, have, norm

sys.path.insert(0, str(REPO / "examples"))  # the examples are folders to copy, not installed packages

EXPECTED_WORDS = ("recording", "speech", "computer", "machine")


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def qapp():
    if not have("PySide6"):
        pytest.skip("PySide6 not installed: pip install 'edge-asr[app]' (also in the test extra)")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    # Qt aborts the process when its platform plugin cannot load, so try it in a child first.
    probe = subprocess.run([sys.executable, "-c", "from PySide6.QtWidgets import QApplication; QApplication([])"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"Qt cannot start ({os.environ['QT_QPA_PLATFORM']}): {probe.stderr.strip()[-300:]}; "
                    "install its libraries with scripts/system_deps.sh")
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication([])


@pytest.fixture(scope="module")
def tiny_en(tiny_en_dir):
    import edge_asr

    return edge_asr.load_model(tiny_en_dir, device="cpu")


def _seconds(mm_ss: str) -> float:
    minutes, seconds = mm_ss.split(":")
    return int(minutes) * 60 + float(seconds)


def wait_for(app, condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_qt_signal_delivery_keeps_refcounts(qapp):
    """The apps deliver a timer tick every 50 ms and a signal per caption event for hours. PySide6 6.12.0
    dropped one reference to the slot's result (None) per delivery and one to emit()'s bool per emit,
    and the interpreter aborted once a count reached zero; constraints.txt pins a good version."""
    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QPushButton

    class Emitter(QObject):
        ping = Signal()

    calls: list[int] = []
    button, emitter = QPushButton(), Emitter()
    button.clicked.connect(lambda *_: calls.append(1))  # C++ emits, a Python slot runs
    emitter.ping.connect(lambda: calls.append(1))  # Python emits
    counts = lambda: (sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False))  # noqa: E731
    before = counts()
    for _ in range(300):
        button.click()
        emitter.ping.emit()
    after = counts()
    assert len(calls) == 600
    assert all(a - b > -50 for a, b in zip(after, before)), f"refcounts of None/True/False fell: {before} -> {after}"


def test_caption_app_offscreen_from_file(qapp, tiny_en, tmp_path):
    import edge_asr
    from caption_app.engine import input_devices
    from caption_app.window import CaptionWindow

    # A 3 s step keeps the test short (fewer full-window decodes); the file is fed as fast as it decodes.
    options = edge_asr.StreamingOptions.from_fields(step_s=3.0)
    window = CaptionWindow(tiny_en, options, file=str(SAMPLE), realtime=False)
    window.show()
    devices = input_devices()
    if devices.problem:  # no PortAudio / no device here: the picker says why and the file stays usable
        assert not window.mic_button.isEnabled() and window.status.text() == devices.problem
    else:
        assert window.device_box.count() == len(devices.devices)
    assert window.file_button.isChecked()

    finals: list[str] = []
    tentative_styles: list[tuple[bool, str]] = []

    def on_render():
        if window.tentative_view_text().strip():  # how the tentative tail is drawn, while it is shown
            cursor = window.text.textCursor()
            cursor.setPosition(window._tentative_at + 2)
            fmt = cursor.charFormat()
            tentative_styles.append((fmt.fontItalic(), fmt.foreground().color().name()))

    window.rendered.connect(on_render)
    window.finished.connect(finals.append)
    window.start_button.click()
    assert not window.start_button.isEnabled() and window.stop_button.isEnabled()
    session = window.session
    assert wait_for(qapp, lambda: finals, timeout=90), "the caption session did not end"

    committed = session.stream.committed_text
    shown = window.text.toPlainText()
    assert _words(shown) == _words(finals[0]) == _words(committed) == _words(window.committed_view_text())
    assert window.tentative_view_text() == ""  # finish() committed everything
    for word in EXPECTED_WORDS:
        assert word in norm(shown).split(), (word, shown)
    assert tentative_styles and all(style == (True, "#808080") for style in tentative_styles)
    assert window.start_button.isEnabled() and not window.stop_button.isEnabled()
    assert window.status.text() == "done"

    window.save(str(tmp_path / "captions.txt"))
    window.save(str(tmp_path / "captions.json"))
    assert _words((tmp_path / "captions.txt").read_text()) == _words(committed)
    saved = json.loads((tmp_path / "captions.json").read_text())
    assert _words(saved["text"]) == _words(committed) and saved["events"][0]["kind"] == "committed"

    shot = tmp_path / "caption_app.png"
    assert window.grab().save(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
    window.close()


def test_caption_state_matches_stream_without_qt(tiny_en, tmp_path):
    """The engine alone (what a non-Qt UI would reuse): session thread, queue, display state."""
    import edge_asr
    from caption_app.engine import CaptionSession, CaptionState, FileSource, SessionEnded

    samples, rate = sf.read(SAMPLE, dtype="float32")
    first = tmp_path / "first_sentence.wav"
    sf.write(first, samples[:int(5.5 * rate)], rate)  # "This short recording was made by a speech synthesizer."
    session = CaptionSession(tiny_en, FileSource(str(first), realtime=False),
                             edge_asr.StreamingOptions.from_fields(step_s=3.0)).start()
    session.join(90)
    state, items = CaptionState(), session.poll()
    assert isinstance(items[-1], SessionEnded) and items[-1].error is None
    changes = [state.apply(e) for e in items[:-1]]
    assert _words(state.committed_text) == _words(items[-1].text) == _words(session.stream.committed_text)
    assert _words("".join(c.committed for c in changes)) == _words(state.committed_text)
    assert state.tentative == "" and "recording" in norm(state.transcript()).split()


def test_caption_session_stop_mid_stream(tiny_en):
    """The live path (real-time pace, decoding on the transcriber's worker): Stop as soon as the first
    words show ends capture at once, and what was heard before it is still decoded and committed."""
    from caption_app.engine import CaptionSession, CaptionState, FileSource, SessionEnded

    session = CaptionSession(tiny_en, FileSource(str(SAMPLE), realtime=True)).start()
    state, ended = CaptionState(), []
    deadline = time.monotonic() + 60
    while not ended and time.monotonic() < deadline:
        for item in session.poll():
            if isinstance(item, SessionEnded):
                ended.append(item)
            elif state.apply(item).tentative or state.committed_text:
                session.stop()
        time.sleep(0.02)
    assert ended and ended[0].error is None
    assert session.stream.received_s < 8  # capture stopped well before the 15.5 s file ended
    assert _words(state.committed_text) == _words(ended[0].text)
    assert norm(ended[0].text).split()[:1] == ["this"], ended[0].text  # "This short recording ..."


def test_file_app_cancel_stops_between_windows(qapp, tiny_en, tmp_path):
    from transcribe_file_app.window import TranscribeWindow

    samples, rate = sf.read(SAMPLE, dtype="float32")
    long = tmp_path / "long.wav"
    sf.write(long, np.tile(samples, 5), rate)  # 77 s: three 30 s windows
    window = TranscribeWindow(tiny_en, str(long))
    window.show()
    done: list[bool] = []
    window.finished.connect(done.append)
    window.transcribe_button.click()
    # Cancel as soon as the first segment is on screen.
    assert wait_for(qapp, lambda: window.text.toPlainText().strip(), timeout=60)
    window.cancel_button.click()
    assert wait_for(qapp, lambda: done, timeout=60)
    lines = window.text.toPlainText().splitlines()
    assert done == [True] and window.status.text().startswith("cancelled")
    ends = [_seconds(line.split("→ ")[1].split("]")[0]) for line in lines]  # "[00:00.00 → 00:05.00] text"
    assert lines and max(ends) <= 60.0, lines  # at most the window in hand was finished, never the third
    assert window.transcribe_button.isEnabled() and not window.cancel_button.isEnabled()
    assert "recording" in norm(lines[0])
    window.grab().save(str(tmp_path / "transcribe_file_app.png"))
    window.close()


def test_file_app_headless(tiny_en, capsys):
    from transcribe_file_app.__main__ import main

    assert main(["--headless", "--model", str(tiny_en.manifest.folder), str(SAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert "language en, 15.5 s" in err and err.count("->") == 3  # one line per segment as it came
    for word in EXPECTED_WORDS:
        assert word in norm(out).split()


@pytest.mark.skipif(os.environ.get("EDGE_ASR_TEST_PACKAGING") != "1",
                    reason="the PyInstaller build takes about a minute of CPU: set EDGE_ASR_TEST_PACKAGING=1 to run it")
def test_frozen_app_build(tiny_en, tmp_path):
    """examples/packaging/build.sh as documented: freeze, then the frozen program transcribes its bundled
    sample with the shipped model (build.sh checks the text; so does this test)."""
    if not have("PyInstaller"):
        pytest.skip("PyInstaller not installed: pip install 'edge-asr[package]'")
    run = subprocess.run(["bash", str(REPO / "examples" / "packaging" / "build.sh"), "--console-only", "--ship-model",
                          "--model", str(tiny_en.manifest.folder), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    app = tmp_path / "transcribe_file_app"
    assert (app / "model" / "manifest.json").is_file() and not (app / "_internal" / "PySide6").exists()
    out = subprocess.run([str(app / "transcribe_file_app"), "--headless", "--vad", str(SAMPLE)], capture_output=True,
                         text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    for word in EXPECTED_WORDS:
        assert word in norm(out.stdout).split()
