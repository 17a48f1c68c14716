"""Review 57: response.md's legend could give the test/train ratio as "0.304 to 0.304" (ratios 0.3041 and
0.3043: unequal, but equal as printed). It now says one value where both ends round alike."""

from __future__ import annotations

import pandas as pd

from harness.response_report import _ratio_words


def test_a_ratio_whose_ends_round_alike_is_one_value() -> None:
    words = _ratio_words(pd.DataFrame({"test_train_ratio": [0.3041, 0.3043]}), 5)
    assert words.endswith("validation excluded, 0.304 (response.csv's test_train_ratio)"), words


def test_a_ratio_whose_ends_differ_is_a_range() -> None:
    words = _ratio_words(pd.DataFrame({"test_train_ratio": [0.3031, 0.3049]}), 5)
    assert words.endswith("validation excluded, 0.303 to 0.305 (response.csv's test_train_ratio)"), words
