"""The run's ``done:`` line says what its wall time includes: the cluster's start only where one started."""

from harness import run
from harness.config import make_config


def test_the_cluster_start_is_named_only_where_one_started():
    some = ["a task"]
    assert run._cluster_words(make_config("demo", cluster="local"), some) == " and the cluster's start"
    assert run._cluster_words(make_config("demo", cluster="none"), some) == ""    # fits in this process
    assert run._cluster_words(make_config("demo", cluster="local"), []) == ""     # nothing left to run
