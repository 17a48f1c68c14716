"""Command-line parsing with the project's error rule: bad flags or values are one ``error:`` line on stderr
naming the flag and value, exit status 2, no usage block; an unknown flag or a mistyped choice gets the
closest known one."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["OneLineParser", "closest", "did_you_mean"]


def closest(word: str, options: Sequence[str], ignore_case: bool = False) -> str | None:
    """The closest of ``options`` to ``word`` (difflib), or None when none is close."""
    fold = str.lower if ignore_case else str
    by_key = {fold(o): o for o in options}
    close = difflib.get_close_matches(fold(word), list(by_key), n=1, cutoff=0.6)
    return by_key[close[0]] if close else None


def did_you_mean(word: str, options: Sequence[str]) -> str:
    """``"; did you mean X?"`` for the closest of ``options`` (difflib), or ``""``."""
    close = closest(word, options)
    return f"; did you mean {close}?" if close else ""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser that never abbreviates flags and reports every error as one line:
    ``error: <what> (see <prog> --help)``, exit status 2."""

    def __init__(self, *args: object, **kw: object) -> None:
        kw.setdefault("allow_abbrev", False)
        super().__init__(*args, **kw)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        m = re.match(r"unrecognized arguments: (\S+)", message)
        if m:
            name = m.group(1).split("=", 1)[0]
            if name.startswith("-"):
                flags = [s for a in self._actions for s in a.option_strings if s.startswith("--")]
                message = f"unknown flag {name}{did_you_mean(name, flags)}"
            else:
                message = f"unexpected argument {name!r}"
        m = re.match(r"(argument \S+): invalid choice: '(.*)' \(choose from (.*)\)$", message)
        if m:
            options = re.findall(r"'([^']*)'", m.group(3))
            message = (f"{m.group(1)}: invalid choice {m.group(2)!r}{did_you_mean(m.group(2), options)} "
                       f"(choose from {', '.join(options)})")
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")
