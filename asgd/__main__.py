"""`python -m asgd ...` runs the `asgd` command line."""

from asgd.cli import main

raise SystemExit(main())
