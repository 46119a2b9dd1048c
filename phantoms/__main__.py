"""``python -m phantoms``: see :mod:`phantoms.cli`."""

from phantoms.cli import main

raise SystemExit(main())
