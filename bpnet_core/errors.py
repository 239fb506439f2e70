"""The one error type users see.

Every check on user input (files, specs, flags) raises :class:`BpnetError` with a one-line message that names the
file or key at fault. The CLI turns it into ``bpnet: error: <message>`` and exit code 2; library callers and
notebooks get an ordinary exception.
"""


class BpnetError(Exception):
    """A user-facing error: one line, naming the file or key at fault."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ParamValueError(BpnetError):
    """A constant of a parameter set (the decoder's, the tracker's) outside its valid values. ``name``, ``value`` and
    ``expect`` (what it must be) travel as attributes, so a spec reports it under its own key without re-parsing the
    message."""

    def __init__(self, group: str, name: str, value, expect: str):
        self.group, self.name, self.value, self.expect = group, name, value, expect
        super().__init__(f"{group} parameter {name}={value!r} must be {expect}")

    @classmethod
    def first(cls, group: str, obj, checks) -> None:
        """Raise for the first ``(name, ok, expect)`` of ``checks`` that is not ok (``value`` read off ``obj``)."""
        for name, ok, expect in checks:
            if not ok:
                raise cls(group, name, getattr(obj, name), expect)
