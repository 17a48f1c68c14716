import sys

sys.exit(5)


class E:
    def fit(self, split):
        return self

    def predict(self, x1):
        return x1
