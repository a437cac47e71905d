"""``python -m labkit.grading``: the grading commands on their own."""

import sys

from .cli import main

sys.exit(main())
