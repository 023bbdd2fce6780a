"""`python -m edge_asr_bench` runs the same bench as `edge-asr bench`."""

from .cli import main

raise SystemExit(main())
