"""``python -m training.clinical``: see :mod:`training.clinical`."""

from training.clinical.pipeline import main

main()
