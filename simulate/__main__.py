"""`python -m simulate ...` runs the `asgd` command line.

This file is a program entry point, not part of the library: `import simulate` never imports
it, so the package keeps its place in the data flow (objectives -> simulate -> analysis); only
the program, which sits after analysis, reaches back to `analysis.cli`.
"""

from analysis.cli import main

raise SystemExit(main())
