"""How much the CLI and the tutorial runner print: bpnet's own lines by default, the libraries' chatter on request.

Quiet by default (levels INFO, WARNING, ERROR): TensorFlow's C++ INFO and WARNING lines (oneDNN, cpu_feature_guard,
TFRecordDataset notes) and its Python WARNING records (deprecation notices), absl's and papermill's INFO lines and
the Jupyter kernel's start-up warnings ("Kernel is running over TCP without encryption") are not shown. Errors always
are: TensorFlow's C++ ERROR and FATAL lines, the kernel's errors, Python exceptions and bpnet's one-line errors.

``-ll/--log_level DEBUG`` (TAO's flag) or ``BPNET_LOG_LEVEL=DEBUG`` shows everything. A ``TF_CPP_MIN_LOG_LEVEL`` the
user set is respected at the quiet levels.

Since TensorFlow 2.17 some C++ lines go through absl logging before ``absl::InitializeLog`` and ignore
``TF_CPP_MIN_LOG_LEVEL`` (tensorflow/tensorflow#100442), so the ``bpnet`` console script also routes its standard
error (file descriptor 2, inherited by worker processes and notebook kernels) through a small filter process that
drops exactly those INFO/WARNING line formats (:data:`NOISE`) and passes everything else through unchanged
(:func:`filtered_stderr`). Being a separate process, it still passes on a crash report when bpnet dies. It ends
with bpnet, not with the last process that holds its input pipe: a second pipe, whose write end only bpnet holds,
reaches end-of-file when bpnet finishes or is killed (the kernel closes it), and the filter then passes on what is
in its input and exits, even if a worker process or a notebook kernel bpnet started still holds the input pipe.

Progress bars (:func:`progress_bar`, every tqdm bar of bpnet): live on a terminal; in a log (standard error is a
file or a pipe: CI, ``nohup``, ``| tee``, a subprocess's captured output) one plain line at the start, at most one
every :data:`LOG_INTERVAL_S` seconds and the final one, without carriage returns; in a notebook, tqdm's widget.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

#: the environment variable that sets the level when -ll/--log_level is not given
ENV_VAR = "BPNET_LOG_LEVEL"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT = "INFO"

#: seconds between two progress-bar lines when standard error is not a terminal
LOG_INTERVAL_S = 30.0

#: whether the standard error bpnet's filter writes to is a terminal (None: no filter, ask sys.stderr)
_terminal: bool | None = None

#: Python loggers of libraries that are quiet below DEBUG
CHATTY_LOGGERS = ("absl", "papermill", "traitlets", "nncf", "tensorflow", "h5py", "matplotlib")


def log_level(value: str | None = None) -> str:
    """The level in force: ``value`` (from -ll) if given, else ``$BPNET_LOG_LEVEL``, else INFO. An unknown value in
    the environment variable is ignored (with the default used), as argparse already checks the flag."""
    if value:
        return value.upper()
    env = os.environ.get(ENV_VAR, "").strip().upper()
    return env if env in LEVELS else DEFAULT


def verbose(level: str) -> bool:
    """True when the libraries' own logs are shown (DEBUG)."""
    return level == "DEBUG"


def quiet_environment(level: str) -> None:
    """Set the environment TensorFlow (this process and child processes such as notebook kernels) reads when it is
    imported: C++ logs from INFO up at DEBUG, only errors otherwise."""
    if verbose(level):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # 2: ERROR and FATAL only


#: Python loggers whose WARNING records are notes for the library's own developers (TensorFlow's deprecation
#: notices, "This API was designed for TensorFlow v1", tf.function retracing hints): ERROR and up unless DEBUG
DEVELOPER_LOGGERS = ("tensorflow",)


def configure(level: str) -> None:
    """Logging for a CLI run: bpnet's records at ``level`` on stderr; the libraries' at WARNING (TensorFlow's at
    ERROR) unless DEBUG."""
    quiet_environment(level)
    logging.basicConfig(level=getattr(logging, level), format="%(levelname)s %(name)s: %(message)s")
    for name in CHATTY_LOGGERS:
        quiet = logging.ERROR if name in DEVELOPER_LOGGERS else logging.WARNING
        logging.getLogger(name).setLevel(logging.DEBUG if verbose(level) else quiet)


def kernel_arguments(level: str) -> list[str]:
    """Extra command-line arguments for a notebook kernel: its own log at ERROR unless DEBUG (ipykernel logs the TCP
    transport warning at WARNING on every start)."""
    return [] if verbose(level) else ["--IPKernelApp.log_level=ERROR"]


#: stderr lines dropped below DEBUG: absl/glog INFO and WARNING records (``I0000 00:00:1796.. 123 port.cc:153] ..``),
#: TensorFlow's own format (``2025-01-01 10:00:00.123: W tensorflow/...cc:12] ..``), absl's pre-init banner and the
#: second line of the cpu_feature_guard message, and the two lines asyncio prints when a notebook kernel is shut down
#: while its control channel still waits (ipykernel's ``Kernel.dispatch_control`` task; harmless, seen on a busy
#: machine). ERROR (E) and FATAL (F) records are never matched.
NOISE = (
    r"(?:[IW]\d{4} [\d:.]+\s+\d+ [\w./+-]+:\d+\] "
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] [\w./+-]+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags"
    r"|Task was destroyed but it is pending!$"
    r"|task: <Task pending name='Task-\d+' coro=<Kernel\.dispatch_control\(\) )"
)
#: a line start that may grow into a NOISE line (held back until its line is complete)
_MAYBE_NOISE = r"(?:[IW]\d|\d{4}-|WARNING: All|To enable|Task was|task: <)"

_FILTER = r"""
import os, re, select, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for bpnet; the filter drains until bpnet has exited
noise, maybe, done = re.compile(sys.argv[1].encode()), re.compile(sys.argv[2].encode()), int(sys.argv[3])
out, pending = sys.stderr.buffer, b""


def emit(chunk):
    global pending
    data = pending + chunk
    pieces = re.split(rb"(?<=[\r\n])", data)
    pending = pieces.pop() if chunk else b""
    if pending and not maybe.match(pending):  # a progress bar's partial line: show it now
        pieces.append(pending)
        pending = b""
    text = b"".join(p for p in pieces if p and not noise.match(p))
    if text:
        out.write(text)
        out.flush()


while True:
    if 0 in select.select([0, done], [], [])[0]:
        chunk = os.read(0, 65536)
        emit(chunk)
        if not chunk:
            break
        continue
    # bpnet closed the done pipe (finished, or died: the kernel closes it): pass on what is in the pipe now and
    # exit, even if a process bpnet started (a worker, a kernel) still holds the pipe's write end
    os.set_blocking(0, False)
    while True:
        try:
            chunk = os.read(0, 65536)
        except BlockingIOError:
            chunk = b""
        emit(chunk)
        if not chunk:
            break
    break
"""


@contextlib.contextmanager
def filtered_stderr(level: str) -> Iterator[None]:
    """Below DEBUG, route file descriptor 2 of this process (and of the processes it starts) through a filter
    process that drops :data:`NOISE` lines; restored on exit. At DEBUG, or when it cannot be set up, a no-op."""
    global _terminal
    if verbose(level):
        yield
        return
    if os.name != "posix":  # select() on pipes and pass_fds: POSIX only
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = os.pipe()
        done_read, done_write = os.pipe()  # only this process holds done_write (os.pipe is not inheritable)
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _FILTER, NOISE, _MAYBE_NOISE, str(done_read)],
                                stdin=read_end, stdout=subprocess.DEVNULL, stderr=saved, close_fds=True,
                                pass_fds=(done_read,))  # fmt: skip
        os.close(read_end)
        os.close(done_read)
        os.dup2(write_end, 2)
        os.close(write_end)
        _terminal = os.isatty(saved)  # fd 2 is a pipe now: progress bars ask about the filter's output
    except OSError:  # no filter (e.g. no file descriptor 2): print unfiltered rather than fail
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        _terminal = None
        os.dup2(saved, 2)  # this process's last write end of the pipe closes
        os.close(saved)
        os.close(done_write)  # the filter passes on what is in the pipe and exits, even if a worker still holds it
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def stderr_is_terminal() -> bool:
    """Whether this process's standard error ends up on a terminal (through the filter of :func:`filtered_stderr`
    when it runs)."""
    if _terminal is not None:
        return _terminal
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


class _LogLines:
    """The stream of a progress bar in a log: each redraw (``\\r`` + bar) becomes one plain line."""

    def __init__(self, stream):
        self._stream = stream
        self.encoding = getattr(stream, "encoding", None)

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line:  # the bar's clearing writes (spaces, a lone newline at close) carry nothing
            self._stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs):
    """A tqdm progress bar (``tqdm.auto``; same arguments) as every bpnet loop shows it: ``enabled=False`` shows
    none; on a terminal it is live; when standard error is not a terminal it writes one line at the start, at most
    one every :data:`LOG_INTERVAL_S` seconds and the final one (a ``leave=False`` bar: none at the end), instead of
    a carriage-return redraw at every update; in a notebook it is tqdm's widget. Callers leave the redraws to
    ``update`` (``set_postfix(..., refresh=False)``): a forced refresh writes a line in a log."""
    from tqdm import autonotebook, std
    from tqdm.auto import tqdm

    if not enabled:
        kwargs["disable"] = True
    elif autonotebook.tqdm is std.tqdm and not stderr_is_terminal():  # not a notebook's widget, not a terminal
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        kwargs["file"] = _LogLines(kwargs.get("file") or sys.stderr)
        kwargs["dynamic_ncols"] = False
    return tqdm(iterable, **kwargs)
