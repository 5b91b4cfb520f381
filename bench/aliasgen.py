"""Generate a file of many small alias bombs, each under the per-document node limit.

    python bench/aliasgen.py OUT.yaml [--documents 4200]

Each document expands to about 190,000 nodes from about 500 bytes of text, so 4,200 of
them fill the 2 MiB file limit (issue 8: such a file took 203 s of CPU to refuse).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def bomb_document(index: int) -> str:
    levels = [f'a: &a{index} ["x","x","x","x","x","x","x","x","x","x"]']
    prev = f"a{index}"
    for name in "bcde":
        anchor = f"{name}{index}"
        levels.append(f"{name}: &{anchor} [" + ",".join([f"*{prev}"] * 10) + "]")
        prev = anchor
    levels.append("g: [" + ",".join([f"*d{index}"] * 6) + "]")
    return "\n".join(levels) + "\n"


def bomb_file(documents: int) -> bytes:
    return "---\n".join(bomb_document(i) for i in range(documents)).encode()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--documents", type=int, default=4200)
    args = p.parse_args()
    args.out.write_bytes(bomb_file(args.documents))


if __name__ == "__main__":
    main()
