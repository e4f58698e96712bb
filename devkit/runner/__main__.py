"""`python -m devkit.runner`: what `make run` starts."""

import sys

from devkit.runner.command import main

sys.exit(main())
