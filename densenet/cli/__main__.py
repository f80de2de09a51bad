"""`python -m densenet.cli ...` runs the `densenet` command."""

import sys

from densenet import cli

sys.exit(cli.main())
