"""The `mlgitfs` program's entry point: Ctrl-C while it is still starting ends it quietly.

Importing the library takes a few hundred milliseconds; a KeyboardInterrupt raised there
would print a traceback from an import. Until the command runs, SIGINT keeps its default
action (the process ends as a shell expects of Ctrl-C, exit status 130, nothing begun);
then Python's KeyboardInterrupt takes over, which the command maps to 130 after undoing
what it had half made (main.report).
"""

from __future__ import annotations

import signal


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from .main import main as run

    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run()
    finally:  # the work is over: a late Ctrl-C ends the exit, not a traceback
        signal.signal(signal.SIGINT, signal.SIG_DFL)
