"""``python -m bertwatt``: the same as the ``bertwatt`` command."""

import sys

from bertwatt.cli import main

sys.exit(main())
