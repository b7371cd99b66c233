"""``python -m m3retriever.cli``: the ``m3retriever`` command."""

from m3retriever.cli import main

raise SystemExit(main())
