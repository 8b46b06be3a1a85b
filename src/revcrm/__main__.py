"""``python -m revcrm demo``."""

import sys

from revcrm._cli import main

sys.exit(main())
