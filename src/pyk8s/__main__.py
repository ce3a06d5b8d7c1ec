"""``python -m pyk8s`` runs the same command line as the ``pyk8s`` script."""

from pyk8s.server import bytecode

bytecode.enable()  # before the imports: see its module

from pyk8s.cli import main  # noqa: E402

raise SystemExit(main())
