"""``python -m FCDDetectLib.cli``: the ``fcd`` command without the console script."""

import sys

from FCDDetectLib.cli import main

sys.exit(main())
