"""``python -m sbcore`` is the ``sbcore`` command."""

import sys

from sbcore.cli import main

sys.exit(main())
