"""``python -m FCDDetectLib.cli``: the ``fcd`` command without the console script."""

import sys

from . import main

sys.exit(main())
