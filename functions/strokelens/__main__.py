import sys

from strokelens.cli import main

sys.exit(main())
