"""What the person running sees while it runs: one live progress line, log lines above it, the functions' logs."""

from __future__ import annotations

import io
import json
import logging
import shutil
import threading
import time
from typing import Any, TextIO

from devkit.runner.tracker import Tracker

PROGRESS_REFRESH_SECONDS = 0.5  # the progress line is redrawn this often; the table read at most this often
LOG_MIN_INTERVAL_SECONDS = 2.0  # not a terminal: a progress line at most this often when something changed...
LOG_HEARTBEAT_SECONDS = 10.0  # ...and at least this often when nothing did


class Display:
    """Progress and log lines: one line redrawn with \\r on a terminal, plain timestamped lines otherwise."""

    def __init__(self, stream: TextIO, *, live: bool, started: float):
        self._stream = stream
        self._live = live
        self._started = started
        self._lock = threading.RLock()
        self._line = ""  # the progress line now on screen (live mode)
        self._last_logged = ""
        self._last_logged_at = 0.0

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self._started:6.1f}s]"

    def log(self, text: str) -> None:
        """A line that stays (setup, warnings, function logs), printed above the progress line."""
        with self._lock:
            if self._live and self._line:
                self._stream.write("\r" + " " * len(self._line) + "\r")
            self._stream.write(f"{self._stamp()} {text}\n")
            if self._live and self._line:
                self._stream.write(self._line)
            self._stream.flush()

    def progress(self, text: str, *, force: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            since = now - self._last_logged_at
            if self._live:
                width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
                line = f"{self._stamp()} {text}"[:width]  # never wrap: \r only returns to the start of a line
                self._stream.write("\r" + line + " " * max(0, len(self._line) - len(line)))
                self._line = line
                self._stream.flush()
            elif (
                (force and text != self._last_logged)
                or since >= LOG_HEARTBEAT_SECONDS
                or (text != self._last_logged and since >= LOG_MIN_INTERVAL_SECONDS)
            ):
                self._stream.write(f"{self._stamp()} {text}\n")
                self._stream.flush()
                self._last_logged, self._last_logged_at = text, now

    def close(self) -> None:
        with self._lock:
            if self._live and self._line:
                self._stream.write("\n")
                self._stream.flush()
            self._line = ""


POWERTOOLS_LOG_KEYS = frozenset(
    {
        "level",
        "location",
        "message",
        "timestamp",
        "service",
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "xray_trace_id",
        "sampling_rate",
        "exception",
        "exception_name",
        "stack_trace",
    }
)


class FunctionOutput(io.TextIOBase):
    """``sys.stdout`` while the functions run: their log lines go to the display; EMF metric lines are
    dropped (shown as they are with ``verbose``). Powertools' ``single_metric`` prints even when
    POWERTOOLS_METRICS_DISABLED is set, hence the filter."""

    def __init__(self, display: Display, *, verbose: bool, fallback: TextIO):
        super().__init__()
        self._display: Display | None = display
        self._verbose = verbose
        self._fallback = fallback
        self._buffer = ""
        self._lock = threading.Lock()
        self.metric_lines = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            if self._display is None:
                return self._fallback.write(text)
            self._buffer += text
            *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        pass

    def detach_display(self) -> None:
        """After the run: anything still written (a logger that kept this stream) goes to the fallback."""
        with self._lock:
            rest, self._buffer, self._display = self._buffer, "", None
        if rest:
            self._fallback.write(rest + "\n")

    def _line(self, line: str) -> None:
        if not line.strip() or self._display is None:
            return
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and "_aws" in record:
            self.metric_lines += 1
            if not self._verbose:
                return
        if self._verbose or not isinstance(record, dict) or "level" not in record:
            self._display.log(line)
            return
        extras = {key: value for key, value in record.items() if key not in POWERTOOLS_LOG_KEYS}
        text = (
            f"{record.get('function_name') or record.get('service', 'function')} {record['level']}: "
            f"{record.get('message')}"
        )
        if extras:
            text += " " + json.dumps(extras, separators=(",", ":"), default=str)
        if record.get("exception_name"):
            text += f" [{record['exception_name']}]"
        self._display.log(text)


def route_function_logs(stream: TextIO, original: TextIO) -> None:
    """Point the Powertools logger's handler at ``stream`` if it was bound to ``original`` (it binds
    sys.stdout once, when ``untag.observability`` is first imported)."""
    for handler in logging.getLogger("untag").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is original:
            handler.setStream(stream)


class Ticker:
    """Redraws the progress line in the background, so it moves during a long function invocation too.

    It reads nothing itself: moto's server is not thread-safe, so only the main thread calls AWS.
    """

    def __init__(self, tracker: Tracker, display: Display, pipeline: Any):
        self._tracker, self._display, self._pipeline = tracker, display, pipeline
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(PROGRESS_REFRESH_SECONDS):
            self._display.progress(progress_text(self._tracker.counts(), self._pipeline))


def progress_text(counts: dict[str, int], pipeline: Any) -> str:
    total = counts["total"]
    percent = 100 * counts["finished"] // total if total else 100
    running = f"running {pipeline.running} | " if pipeline.running else ""
    return (
        f"{counts['finished']:,}/{total:,} finished ({percent}%) | {counts['accepted']:,} accepted, "
        f"{counts['rejected']:,} rejected | {counts['activities']:,} activities | {running}"
        f"runs: intake {pipeline.intake_invocations}, poller {pipeline.poller_invocations}"
    )
