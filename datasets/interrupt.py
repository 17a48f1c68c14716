"""After Ctrl-C, the command's one line and nothing else: no RuntimeWarning from a zarr write it cut short.

zarr's synchronous API makes a coroutine and hands it to zarr's own event-loop thread; a KeyboardInterrupt
that lands between the two leaves the coroutine never awaited, and Python warns when it is collected, often
as the process exits ("RuntimeWarning: coroutine 'AsyncGroup.update_attributes' was never awaited", seen
once in CI under `tests/datasets/test_bad_input_issue10.py`). The write it held was to a store the
interrupted command discards (a cube's temporary store) or resumes from (the result store), so the warning
tells the user nothing they can act on.
"""

from __future__ import annotations

import warnings

__all__ = ["quiet_unawaited_coroutines"]


def quiet_unawaited_coroutines() -> None:
    """Ignore "coroutine ... was never awaited" warnings for the rest of this process: call it on Ctrl-C,
    as the command ends."""
    warnings.filterwarnings("ignore", message=r"coroutine .* was never awaited", category=RuntimeWarning)
