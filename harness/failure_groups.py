"""The failed fits of a run grouped by cause, for the run's closing lines.

A reason embeds its fit's own numbers ("best validation loss 2.4e+19 (epoch 3) is over 10 times the untrained
model's 164: the fit diverged; ..."), so grouping by the reason's text gave every diverged fit a line of its
own. Reasons that differ only in their numbers are one cause: one line with the count, the models, each
number's range over the group and one fit as an example. OUT/failures.csv keeps every fit's own reason.
"""

from __future__ import annotations

import re
from collections import Counter

# a decimal number standing alone (not inside a name such as "lr10" or "x1", nor a version's "3.11.2")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?!\w|\.\d)")
_SLOT = "\0"


def _kind(reason: str) -> str:
    """The reason with each number replaced by a placeholder: equal for failures of the same cause."""
    return _NUMBER.sub(_SLOT, reason)


def _ranged(reasons: list[str]) -> str:
    """The first line of ``reasons`` (all of one kind), each number as its range over them ("1 to 150"),
    or as itself where every reason has the same."""
    line = reasons[0].splitlines()[0]
    n = len(_NUMBER.findall(line))
    columns = list(zip(*(_NUMBER.findall(r)[:n] for r in reasons), strict=True))
    parts = _NUMBER.split(line)
    out = [parts[0]]
    for values, text in zip(columns, parts[1:], strict=True):
        lo, hi = min(values, key=float), max(values, key=float)
        out += [lo if float(lo) == float(hi) else f"{lo} to {hi}", text]
    return "".join(out)


def failure_lines(rows: list[dict]) -> list[str]:
    """One line per cause of failure in ``rows`` (OUT/failures.csv's rows), most fits first: the count, the
    reason's first line with each number as its range, the models of more than one fit and an example fit."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        reason = r["reason"] or "(no reason recorded)"
        text = f"{r['method']}: {reason}" if r["method"] else reason
        groups.setdefault(_kind(text), []).append({**r, "text": text})
    lines = []
    for rs in sorted(groups.values(), key=lambda g: -len(g)):
        e = rs[0]
        reason = _ranged([r["text"] for r in rs])
        among = ""
        if len(rs) > 1:
            models = ", ".join(f"{k} {m}" for m, k in Counter(r["model"] for r in rs).items())
            ranged = "ranges over " if reason != e["text"].splitlines()[0] else ""
            among = f"{ranged}{len(rs)} fits: {models}; "
        lines.append(f"  {len(rs)} x {reason[:300]} ({among}e.g. {e['model']} {e['drug']} latent "
                     f"{e['latent']} repeat {e['repeat']} fold {e['fold']})")
    return lines
