"""``python -m scratchrnn`` = the ``scratchrnn`` command."""

try:
    from .cli import main
except KeyboardInterrupt:         # Ctrl-C while importing: exit 130 without a traceback
    from ._interrupt import exit_quietly_if_command

    exit_quietly_if_command()
    raise

raise SystemExit(main())
