"""A contender module that calls sys.exit when imported (registered by entry point in the tests)."""

import sys

sys.exit("no GPU found")
