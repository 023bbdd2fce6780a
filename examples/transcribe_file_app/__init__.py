"""File transcription desktop app (PySide6) with a Cancel button, on edge-asr's lazy segment generator.

    pip install 'edge-asr[app]'
    cd examples && python -m transcribe_file_app --model base talk.flac
    cd examples && python -m transcribe_file_app --headless --model tiny.en ../edge_asr/assets/sample.flac

job.py runs ``WhisperModel.transcribe_segments`` on a thread and stops it between windows (no Qt);
window.py the widgets; __main__.py the command line (``--headless`` prints segments, no display needed;
it is what examples/packaging freezes and tests).
"""
