"""Where shards live: a local folder, an HTTP(S) base URL or a `pipe:` command — and how to read them without hanging.

A shard location is what `data.shards` / `StreamConfig.shards` names:

    /data/daa/denoise/shards                          local folder (manifest.json + the tar files)
    https://host/daa/denoise/shards                   the same layout behind HTTP(S)
    pipe:aws s3 cp s3://bucket/daa/shards/{} -        any command that writes a file to stdout; {} = the file name
    pipe:gsutil cat gs://bucket/daa/shards/{}         (webdataset's `gopen`: no code of ours per object store)

Files are named relative to the location (manifest.json, syn-000000.tar, …). A manifest stream may also list its
shards as a brace pattern (`"pattern": "syn-{000000..000127}.tar"`) instead of the writer's file list, and a pattern
or file name that is itself a URL, a pipe: command or an absolute path points that stream elsewhere (e.g. the real
stream on another server).

Reading a remote shard can fail: a transient error (connection reset or refused, a timeout, HTTP 5xx, a pipe whose
command fails) is retried with bounded back-off (`RETRY_DELAYS`); a missing file (HTTP 404/410, no such local
file) is not. Every read has a deadline (`timeout` seconds without a byte), so a stalled server or command cannot
hang a training run: the shard is then given up, skipped and counted by the reader (data_shards.stream).
"""
from __future__ import annotations

import http.client
import os
import threading
import urllib.error
import urllib.request
from typing import BinaryIO

RETRY_DELAYS = (0.5, 1.0, 2.0)
"""Seconds slept before the 2nd, 3rd and 4th attempt to read a shard: at most 4 attempts, 3.5 s of waiting."""
TIMEOUT = 60.0
"""Seconds a read may wait for data before it counts as a (transient) failure."""


class ShardMissing(OSError):
    """The file does not exist at the location (HTTP 404/410, no such local file): not retried."""


class ShardReadError(OSError):
    """A transient failure (reset, refused, timeout, HTTP 5xx, a failing pipe command): retried, then given up."""


def kind(location: str) -> str:
    """'http', 'pipe' or 'local'."""
    if location.startswith(("http://", "https://")):
        return "http"
    if location.startswith("pipe:"):
        return "pipe"
    return "local"


def join(location: str, name: str) -> str:
    """The URL or path of file `name` at `location` (a name that is itself a URL, a pipe: or an absolute path is
    kept: a manifest may place one stream elsewhere than the others)."""
    if kind(name) != "local" or os.path.isabs(name):
        return name
    k = kind(location)
    if k == "http":
        return location.rstrip("/") + "/" + name
    if k == "pipe":
        if "{}" not in location:
            raise ValueError(f"shard location {location!r}: a pipe: command needs {{}} where the file name goes, e.g. "
                             "'pipe:aws s3 cp s3://bucket/shards/{} -'")
        return location.replace("{}", name)
    return os.path.join(location, name)


def expand(pattern: str) -> list[str]:
    """File names of a brace pattern (`syn-{000000..000127}.tar`), in order."""
    import braceexpand

    return list(braceexpand.braceexpand(pattern))


def open_url(url: str, timeout: float = TIMEOUT) -> BinaryIO:
    """A readable binary stream of `url` (a path, http(s)://… or pipe:…). Raises ShardMissing or ShardReadError."""
    k = kind(url)
    if k == "local":
        try:
            return open(url, "rb")
        except FileNotFoundError as e:
            raise ShardMissing(f"{url}: no such file") from e
        except OSError as e:
            raise ShardReadError(f"{url}: {e.strerror or e}") from e
    if k == "http":
        try:
            return _Guarded(urllib.request.urlopen(url, timeout=timeout), url)
        except urllib.error.HTTPError as e:
            if e.code in (404, 410):
                raise ShardMissing(f"{url}: HTTP {e.code}") from e
            raise ShardReadError(f"{url}: HTTP {e.code} {e.reason}") from e
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            raise ShardReadError(f"{url}: {getattr(e, 'reason', None) or e}") from e
    from webdataset.gopen import gopen

    return _Guarded(gopen(url, "rb"), url, deadline=timeout)


def read_all(url: str, timeout: float = TIMEOUT) -> bytes:
    """The whole file at `url`, with the retry policy of the shard reader."""
    last: Exception | None = None
    for delay in (0.0, *RETRY_DELAYS):
        if delay:
            threading.Event().wait(delay)
        try:
            with open_url(url, timeout) as f:
                return f.read()
        except ShardMissing:
            raise
        except OSError as e:  # ShardReadError, or a read that failed half-way
            last = e
    raise ShardReadError(f"{url}: unreadable after {len(RETRY_DELAYS) + 1} attempts ({last})")


class _Guarded:
    """A remote stream whose read failures become ShardReadError and that a deadline can cut: for a pipe, a
    watchdog kills the command when no byte arrived for `deadline` seconds (sockets have their own timeout)."""

    def __init__(self, raw, url: str, deadline: float | None = None):
        self.raw, self.url, self.deadline = raw, url, deadline
        self._timer: threading.Timer | None = None
        self._killed = False
        self.failed: Exception | None = None  # the read failure, for the reader to tell it from a corrupt tar
        self._arm()

    def _arm(self) -> None:
        proc = getattr(self.raw, "proc", None)
        if self.deadline is None or proc is None:
            return
        if self._timer is not None:
            self._timer.cancel()

        def kill():
            self._killed = True
            proc.kill()

        self._timer = threading.Timer(self.deadline, kill)
        self._timer.daemon = True
        self._timer.start()

    def read(self, n: int = -1) -> bytes:
        try:
            data = self.raw.read(n)
        except (OSError, http.client.HTTPException, ValueError) as e:  # reset, IncompleteRead, timeout, closed
            self.failed = ShardReadError(f"{self.url}: read failed: {type(e).__name__}: {e}")
            raise self.failed from e
        if self._killed:
            self.failed = ShardReadError(f"{self.url}: no data for {self.deadline:g} s (command killed)")
            raise self.failed
        self._arm()
        if n != 0 and not data:
            left = getattr(self.raw, "length", None)  # an HTTP body shorter than its Content-Length: cut off
            if left:
                self.failed = ShardReadError(f"{self.url}: connection closed with {left} bytes of the body missing")
                raise self.failed
            self._check_exit()
        return data

    def _check_exit(self) -> None:
        proc = getattr(self.raw, "proc", None)
        if proc is not None and proc.wait() != 0:
            self.failed = ShardReadError(f"{self.url}: command exited with status {proc.returncode}")
            raise self.failed

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        try:
            self.raw.close()
        except Exception:  # noqa: BLE001 - a pipe reports its exit status on close; read() has already judged it
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["RETRY_DELAYS", "TIMEOUT", "ShardMissing", "ShardReadError", "expand", "join", "kind", "open_url",
           "read_all"]
