"""`python -m untag_operator`: the `untag` command without its console script."""

import sys

from untag_operator.cli import main

sys.exit(main())
