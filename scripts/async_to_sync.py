#!/usr/bin/env python3
"""Write tally's sync client and group commit flusher from their async sources.

    .venv/bin/python scripts/async_to_sync.py          # write the sync files
    .venv/bin/python scripts/async_to_sync.py --check  # exit 1 if one is out of date

The async code is the one source (SOURCES below); the sync file is what
these rules make of it, token by token, so comments and docstrings stay:

1. The keywords ``async`` and ``await`` are left out, with the space after them.
2. ``Awaitable[X]`` is ``X``.
3. Each word of WORDS is replaced, whole words only, in names and in the
   text of comments and strings alike, so the prose follows the code.
4. A line whose comment ends in ``# sync: X`` is ``X`` in the sync file, at
   the same indentation; with nothing after ``sync:`` the line is left out.
   These mark the few lines that must differ.
5. ruff sorts the imports and ``__all__`` again (a new name can sort
   elsewhere) and formats the file (ruff.toml).

A sync file that still says ``async``, ``await``, ``asyncio`` or an
``Async...`` name is refused: a rule is missing. Each file written starts
with a header naming its source and this command.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ".venv/bin/python scripts/async_to_sync.py"

# async source -> the sync file made from it
SOURCES = {
    "python_client/tally/aio.py": "python_client/tally/client.py",
    "python_client/tally/_coalescer_async.py": "python_client/tally/_coalescer.py",
    "python_client/tally/_router_async.py": "python_client/tally/_router.py",
}

# Whole words, in names, comments and strings; a longer entry is tried first.
WORDS = {
    # tally
    "AsyncTally": "Tally",
    "AsyncSource": "Source",
    "AsyncCoalescer": "Coalescer",
    "AsyncRouter": "Router",
    "aio": "client",  # tally.aio -> tally.client
    "_coalescer_async": "_coalescer",
    "_router_async": "_router",
    "aclose": "close",
    # tally._concurrency: the async name -> its sync twin
    "AEvent": "Event",
    "ALock": "Lock",
    "AStateLock": "StateLock",
    "AWorker": "Worker",
    "ajoin": "join",
    "aspawn": "spawn",
    # psycopg and the standard library
    "AsyncConnectionPool": "ConnectionPool",
    "AsyncConnection": "Connection",
    "AbstractAsyncContextManager": "AbstractContextManager",
    "asynccontextmanager": "contextmanager",
    "AsyncIterator": "Iterator",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    # prose
    "async with": "with",
    "async": "sync",
    "task": "thread",
    "tasks": "threads",
}
WORD = re.compile(r"(?<!\w)(" + "|".join(map(re.escape, sorted(WORDS, key=len, reverse=True))) + r")(?!\w)")
LEFT_OVER = re.compile(r"(?<!\w)(async|await|asyncio|Async\w*|Awaitable)(?!\w)")
MARKER = re.compile(r"#\s*sync:(.*)$")


def header(source: str) -> str:
    return (
        f"# Generated from {source} by {COMMAND}: do not edit.\n# Edit {source}, then run {COMMAND} (make generate).\n"
    )


def _words(text: str) -> str:
    return WORD.sub(lambda m: WORDS[m.group(1)], text)


def transform(text: str) -> str:
    """The sync code of async ``text`` (rules 1 to 4)."""
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def at(pos: tuple[int, int]) -> int:
        return starts[pos[0] - 1] + pos[1]

    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    edits: list[tuple[int, int, str]] = []  # (start, end, new text), in order
    marked: dict[int, str] = {}  # row -> its sync line
    line_start, depth = 1, 0  # the row where the current statement began; brackets open
    for k, tok in enumerate(tokens):
        kind, string = tok.type, tok.string
        if kind == tokenize.NAME and string in ("async", "await"):
            edits.append((at(tok.start), at(tokens[k + 1].start), ""))
        elif kind == tokenize.NAME and string == "Awaitable" and tokens[k + 1].string == "[":
            m, inner = k + 1, 0  # the "]" that closes it
            while True:
                inner += {"[": 1, "]": -1}.get(tokens[m].string, 0)
                if inner == 0:
                    break
                m += 1
            edits.append((at(tok.start), at(tokens[k + 1].end), ""))
            edits.append((at(tokens[m].start), at(tokens[m].end), ""))
        elif kind == tokenize.NAME and string in WORDS:
            edits.append((at(tok.start), at(tok.end), WORDS[string]))
        elif kind == tokenize.COMMENT and (marker := MARKER.search(string)):
            if line_start != tok.start[0]:
                raise SystemExit(f"line {tok.start[0]}: a '# sync:' line must be a whole statement on one line")
            row = tok.start[0]
            indent = re.match(r"[ \t]*", lines[row - 1]).group(0)
            marked[row] = f"{indent}{marker.group(1).strip()}\n" if marker.group(1).strip() else ""
        elif kind in (tokenize.STRING, tokenize.COMMENT) or kind == getattr(tokenize, "FSTRING_MIDDLE", None):
            new = _words(string)
            if new != string:
                edits.append((at(tok.start), at(tok.end), new))
        if kind == tokenize.OP and string in "([{":
            depth += 1
        elif kind == tokenize.OP and string in ")]}":
            depth -= 1
        elif kind == tokenize.NEWLINE or (kind == tokenize.NL and depth == 0):
            line_start = tok.end[0] + 1
    for row, new in marked.items():
        edits = [e for e in edits if not starts[row - 1] <= e[0] < starts[row]]
        edits.append((starts[row - 1], starts[row], new))
    edits.sort()
    out, pos = [], 0
    for start, end, new in edits:
        out.append(text[pos:start])
        out.append(new)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _ruff(args: list[str], text: str, target: str, root: Path) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", target, "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=root,
    )
    if r.returncode != 0:
        raise SystemExit(f"async_to_sync: ruff {args[0]} failed on {target}:\n{r.stderr}")
    return r.stdout


def generate(source: str, root: Path = ROOT) -> str:
    """The text of the sync file made from ``source`` (a path from ``root``)."""
    target = SOURCES[source]
    code = transform((root / source).read_text())
    for n, line in enumerate(code.splitlines(), 1):
        if found := LEFT_OVER.search(line):
            raise SystemExit(f"async_to_sync: {source}: '{found.group(1)}' left in line {n}: {line.strip()}")
    code = _ruff(["check", "--select", "I,RUF022", "--fix", "--quiet"], header(source) + code, target, root)
    return _ruff(["format", "--quiet"], code, target, root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a sync file is out of date")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to work in (default: this one)")
    args = parser.parse_args(argv)
    stale = []
    for source, target in SOURCES.items():
        want = generate(source, args.root)
        path = args.root / target
        if path.exists() and path.read_text() == want:
            continue
        if args.check:
            stale.append(target)
        else:
            path.write_text(want)
            print(f"async_to_sync: wrote {target} from {source}")
    for target in stale:
        print(f"async_to_sync: {target} is out of date: run {COMMAND}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
