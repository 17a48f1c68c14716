"""A plug-in module that prints 5 MB to stderr as it is imported (a debug print in a loop)."""

import sys

sys.stderr.write("IMPORT-FLOOD-START\n")
for _ in range(50_000):
    sys.stderr.write("z" * 99 + "\n")
sys.stderr.write("IMPORT-FLOOD-END\n")


class Shift:
    name = "floods_on_import"

    def fit(self, split):
        return self

    def predict(self, x1):
        return x1
