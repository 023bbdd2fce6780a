"""`python -m edge_asr_bench [COMMAND] ...` is `edge-asr bench [COMMAND] ...` (commands.py)."""

from .commands import main

raise SystemExit(main())
