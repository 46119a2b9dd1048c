"""``python -m phantoms OUT ...``: write a phantom data set in one of the layouts the training reads."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from phantoms.files import write_dataset, write_kaggle_layout


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phantoms", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="output root folder")
    parser.add_argument("--n", type=int, default=20, help="images per class (per folder for kaggle)")
    parser.add_argument("--layout", choices=("flat", "modality", "kaggle"), default="modality")
    parser.add_argument("--format", dest="fmt", choices=("png", "dcm"), default="png")
    parser.add_argument("--modalities", nargs="+", default=None, help="CT and/or MR (default: CT MR; CT if flat)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    if args.layout == "kaggle":
        if args.fmt != "png":
            parser.error("the kaggle layout is PNG only")
        paths = write_kaggle_layout(args.out, args.n, args.seed, size=args.size)
    else:
        mods = args.modalities or (["CT"] if args.layout == "flat" else ["CT", "MR"])
        paths = write_dataset(
            args.out, args.n, seed=args.seed, modalities=mods, layout=args.layout, fmt=args.fmt, size=args.size
        )
    print(f"wrote {len(paths)} images under {args.out}")
    return 0
