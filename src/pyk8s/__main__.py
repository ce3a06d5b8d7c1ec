"""``python -m pyk8s`` runs the same command line as the ``pyk8s`` script."""

from pyk8s.cli import main

raise SystemExit(main())
