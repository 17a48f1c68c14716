"""Plug-in modules whose import misbehaves (tests/harness/test_plugin_import.py)."""


class Named:
    """A method whose name is set per test (tests/harness/test_plugin_import.py)."""

    name = "ok"

    def fit(self, split):
        return self

    def predict(self, x1):
        return x1


class DotDot(Named):
    name = ".."


class Slash(Named):
    name = "my/m"


class Pipe(Named):
    name = "a|b\nc"


class Drug(Named):
    name = "Drug"   # a column of benchmark.md's tables
