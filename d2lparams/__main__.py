"""``python -m d2lparams compare``."""

import sys

from .cli import main

sys.exit(main())
