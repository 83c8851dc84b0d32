"""``python -m FCDDetectLib.cli``: the ``fcd`` command without the console script.

runpy imports ``FCDDetectLib.cli`` before this file runs, and that import turns a Ctrl-C during
it into one line and exit 130, as ``main`` does afterwards.
"""

import sys

from FCDDetectLib.cli import main

sys.exit(main())
