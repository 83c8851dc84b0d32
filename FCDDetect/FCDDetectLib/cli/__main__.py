"""``python -m FCDDetectLib.cli``: the ``fcd`` command without the console script."""

import sys

try:
    from FCDDetectLib.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python imports the command line itself: one line, no traceback
    print("error: interrupted; run the same command again to resume", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
