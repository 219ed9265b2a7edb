"""``python -m hetero_opt``: the ``hetero-opt`` command line."""

from hetero_opt.cli import main

raise SystemExit(main())
