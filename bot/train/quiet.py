"""Keep the backend's native start-up chatter off `bot train`'s stderr.

    with quiet_backend_import(verbose=False):
        from bot.train.trainer import train          # imports keras, and TensorFlow with it

TensorFlow's C++ side logs at import (oneDNN notes, CPU-instruction notes, absl's "All log
messages before absl::InitializeLog()..."), straight to file descriptor 2. Some of it comes
before absl reads `TF_CPP_MIN_LOG_LEVEL` (tensorflow/tensorflow#100442), so the variable
alone cannot silence it: the import runs with descriptor 2 pointed at a temporary file,
whose text is shown only if the import fails. `TF_CPP_MIN_LOG_LEVEL=2` (unless the user set
it) keeps later C++ INFO and WARNING lines quiet too, so a `bot train` error stays one line.
`-v` shows everything. Must be entered before anything imports TensorFlow or Keras.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TensorFlow C++: errors only, once absl is initialised
}


@contextlib.contextmanager
def quiet_backend_import(*, verbose: bool = False) -> Iterator[None]:
    """Import the training backend inside this block; its native stderr output is dropped
    (replayed if the import raises). `verbose` leaves stderr and the environment alone."""
    if verbose:
        yield
        return
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:  # what the backend said may be why it failed
                captured.seek(0)
                sys.stderr.write(captured.read().decode("utf-8", "replace"))
                sys.stderr.flush()
