"""The one error type users see.

Every check on user input (files, specs, flags) raises :class:`BpnetError` with a one-line message that names the
file or key at fault. The CLI turns it into ``bpnet: error: <message>`` and exit code 2; library callers and
notebooks get an ordinary exception.
"""


class BpnetError(Exception):
    """A user-facing error: one line, naming the file or key at fault."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
