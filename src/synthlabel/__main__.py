"""`python -m synthlabel`: the `synthlabel` command line."""

import sys

from synthlabel.cli import main

sys.exit(main())
