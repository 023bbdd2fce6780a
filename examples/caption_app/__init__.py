"""Live captions desktop app (PySide6) on edge-asr's streaming API.

    pip install 'edge-asr[app,mic]'
    cd examples && python -m caption_app --model tiny.en            # microphone
    cd examples && python -m caption_app --file ../edge_asr/assets/sample.flac

engine.py has everything that is not drawing (sources, session, display state, saving; no Qt);
window.py the widgets; __main__.py the command line.
"""
