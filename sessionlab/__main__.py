"""`python -m sessionlab`, as the `sessionlab` command."""

import sys

from sessionlab.cli import main

sys.exit(main())
