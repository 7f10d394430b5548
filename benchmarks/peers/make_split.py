"""Write the magnetic-tile anomaly split JSON that benchmarks/peers/anomalib_run.py reads.

Usage (from the repository root, plain python3, standard library only)::

    python3 benchmarks/peers/make_split.py --out /tmp/mt-split.json

Train is 60 % of MT_Free, chosen by hashing each file name with the seed, so the
choice does not depend on where the dataset lies or on the order the files are
listed in. Test is the rest of MT_Free (``is_defect`` false) plus every image of
MT_Blowhole, MT_Break, MT_Crack, MT_Fray and MT_Uneven (``is_defect`` true).
Only the ``.jpg`` files in each ``Imgs`` folder count, because the ``.png`` files
beside them are the defect masks.

Output format::

    {"dataset": str, "train": [absolute image paths],
     "test": [{"path": str, "is_defect": bool}, ...]}

An optional ``"input_size": [h, w]`` may be added by hand or with ``--input-size``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

DEFAULT_ROOT = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "magnetic-tile"
GOOD_CLASS = "Free"
DEFECT_CLASSES = ("Blowhole", "Break", "Crack", "Fray", "Uneven")
TRAIN_FRACTION = 0.6


def list_images(root: Path, class_name: str) -> list[Path]:
    """Return the sorted absolute paths of the JPEG images of one magnetic-tile class."""
    folder = root / f"MT_{class_name}" / "Imgs"
    if not folder.is_dir():
        raise FileNotFoundError(f"magnetic-tile folder not found: {folder}. Pass the dataset folder with --root")
    paths = sorted(path.resolve() for path in folder.glob("*.jpg"))
    if not paths:
        raise FileNotFoundError(f"no .jpg images in {folder}")
    return paths


def hash_key(path: Path, seed: int) -> str:
    """Return the sort key that orders images for the train selection."""
    return hashlib.sha256(f"{seed}:{path.name}".encode()).hexdigest()


def make_split(root: Path, seed: int, input_size: tuple[int, int] | None) -> dict:
    """Build the split dictionary for the magnetic-tile anomaly task."""
    good = list_images(root, GOOD_CLASS)
    train_count = round(TRAIN_FRACTION * len(good))
    by_hash = sorted(good, key=lambda path: hash_key(path, seed))
    train = sorted(by_hash[:train_count])
    held_out_good = sorted(by_hash[train_count:])

    test = [{"path": str(path), "is_defect": False} for path in held_out_good]
    for class_name in DEFECT_CLASSES:
        test += [{"path": str(path), "is_defect": True} for path in list_images(root, class_name)]

    split = {"dataset": "magnetic-tile", "train": [str(path) for path in train], "test": test}
    if input_size is not None:
        split["input_size"] = list(input_size)
    return split


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"magnetic-tile dataset folder (default: {DEFAULT_ROOT})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the hash that selects train images (default: 0)")
    parser.add_argument(
        "--input-size", type=int, nargs=2, metavar=("H", "W"), help="network input size in pixels to store in the split (optional)"
    )
    parser.add_argument("--out", type=Path, required=True, help="path of the split JSON to write")
    args = parser.parse_args(argv)

    try:
        split = make_split(args.root, args.seed, tuple(args.input_size) if args.input_size else None)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    args.out.write_text(json.dumps(split, indent=1) + "\n")
    defects = sum(item["is_defect"] for item in split["test"])
    print(f"wrote {args.out}: {len(split['train'])} train, {len(split['test'])} test ({defects} defective)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
