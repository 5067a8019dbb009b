#!/usr/bin/env python3
"""Keep the code of a revision that stops being the head.

sql/ and plpython/ hold the code of the head revision only. When you add
revision N+1 (and change sql/ for it), run, from anywhere:

    scripts/freeze_code.py N --ref <git ref where N is the head>

e.g. `scripts/freeze_code.py 0002 --ref main` on a branch that adds 0003.
It reads the code of N at that ref (its sql/ rendered, `#include` expanded),
compares it with the working tree's sql/ (the code of N+1), and writes
migrations/code/N/: each object whose N version differs (one file
`tally.<name>.sql`, or `grants.sql`), and a manifest naming the objects N+1
added and the sha256 of N's whole code. Objects unchanged are not copied.
It then checks that migrations reconstruct N's code exactly.

Run it again whenever sql/ changes while N+1 is unreleased (tally_code
refuses a delta whose sha256 no longer matches). In revision N+1 call
`tally_code.drop_code("N")` and `tally_code.apply_code()` (upgrade), and
`tally_code.drop_code()` and `tally_code.apply_code("N")` (downgrade).
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "migrations"))

import tally_code  # noqa: E402


def unpack(ref: str, into: Path) -> str:
    """Unpack the code and migrations of `ref` into `into`; return its commit id."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    data = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit], check=True, capture_output=True)
    with tarfile.open(fileobj=io.BytesIO(data.stdout)) as tar:
        wanted = [m for m in tar.getmembers() if m.name.split("/")[0] in ("sql", "plpython", "migrations")]
        tar.extractall(into, members=wanted, filter="data")
    return commit


def code_of(tree: tally_code.Tree, rev: str) -> dict[str, str]:
    """The code of `rev` in `tree`. A tree from before reverse deltas kept a
    full rendered copy in migrations/code/<rev>/{functions,procedures,views}/."""
    d = tree.code_dir / rev
    if d.is_dir() and not (d / tally_code.MANIFEST).exists():
        code = {p.name: p.read_text().rstrip("\n") + "\n" for p in sorted(d.rglob("tally.*.sql"))}
        if (d / tally_code.GRANTS).is_file():
            code[tally_code.GRANTS] = (d / tally_code.GRANTS).read_text().rstrip("\n") + "\n"
        return code
    return tree.code_at(rev)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="scripts/freeze_code.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("revision", help="the revision that stops being the head (N)")
    parser.add_argument(
        "--ref",
        default="HEAD",
        help="a git ref holding N's code: where N is the head, or whose migrations/code/ holds N (default HEAD)",
    )
    args = parser.parse_args()
    rev = args.revision

    work = tally_code.WORKTREE
    revs = work.revisions()
    if rev not in revs or rev == revs[-1] or revs[revs.index(rev) + 1] != revs[-1]:
        sys.exit(
            f"freeze_code: {rev} must be the revision right before the head (revisions: {', '.join(revs)}); "
            "add the new revision first"
        )
    new = work.head_code()

    with tempfile.TemporaryDirectory() as tmp:
        commit = unpack(args.ref, Path(tmp))
        old = code_of(tally_code.Tree(Path(tmp)), rev)

    out = tally_code.CODE_DIR / rev
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    changed = sorted(name for name in old if new.get(name) != old[name])
    absent = sorted(set(new) - set(old))
    for name in changed:
        (out / name).write_text(old[name])
    nxt = revs[-1]
    lines = [
        f"# The code of revision {rev} where it differs from {nxt}'s: the files here",
        f"# are their {rev} versions; `absent` names the objects {nxt} added.",
        f"# Written by scripts/freeze_code.py {rev} --ref {args.ref} ({commit}).",
        *(f"absent {name}" for name in absent),
        f"sha256 {tally_code.code_digest(old)}",
    ]
    (out / tally_code.MANIFEST).write_text("\n".join(lines) + "\n")

    again = tally_code.Tree(ROOT).code_at(rev)
    if again != old:
        sys.exit(f"freeze_code: migrations/code/{rev} does not reconstruct the code of {rev} (a bug)")
    dropped = sorted(set(old) - set(new))
    print(
        f"migrations/code/{rev}: {len(changed)} objects of {rev} kept"
        f" ({len(dropped)} of them dropped by {nxt}), {len(absent)} added by {nxt};"
        f" {len(old) - len(changed)} identical to sql/ not copied"
    )


if __name__ == "__main__":
    main()
