"""``python -m scratchrnn`` = the ``scratchrnn`` command."""

from .cli import main

raise SystemExit(main())
