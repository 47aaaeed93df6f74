"""`python -m minibn`: the same as the `minibn` command."""

import sys

from .cli import main

sys.exit(main())
