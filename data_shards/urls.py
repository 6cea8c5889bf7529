"""Where shards live: a local folder, an HTTP(S) base URL or a `pipe:` command — and how to read them without hanging.

A shard location is what `data.shards` / `StreamConfig.shards` names:

    /data/daa/denoise/shards                          local folder (manifest.json + the tar files)
    https://host/daa/denoise/shards                   the same layout behind HTTP(S)
    pipe:aws s3 cp s3://bucket/daa/shards/{} -        any command that writes a file to stdout; {} = the file name
    pipe:gsutil cat gs://bucket/daa/shards/{}         (shell-quoted when substituted: do not quote {} yourself)

Trust comes from the user, not from the data: commands and hosts come only from the location the user wrote. A
manifest names its files relative to its own location (`check_name`); a name that is a URL, a `pipe:` command, an
absolute path or climbs out with `..` is refused unless the user opts in (`StreamConfig.trust_manifest_locations`).

Every remote read has a bounded time (`Limits`): a read that gets no byte for `timeout` seconds fails, and so does a
transfer slower than `min_rate` bytes/s over `rate_window` seconds of reading (a throttled store or proxy that
trickles bytes would otherwise never time out). A failed transfer is retried with bounded back-off (`RETRY_DELAYS`,
one budget per shard, `Attempts`): over HTTP it resumes with a Range request from the last byte delivered (or, when
the server ignores Range and answers 200, re-reads and discards that many bytes); a pipe: command is started again
(the reader then skips the samples already yielded). A missing file (HTTP 404/410, no such local file) is not
retried. A pipe: command runs in its own process group, killed as a whole at a deadline or when the stream closes.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import select
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import BinaryIO

RETRY_DELAYS = (0.5, 1.0, 2.0)
"""Seconds slept before the 2nd, 3rd and 4th attempt to read a shard: at most 4 attempts, 3.5 s of waiting."""
TIMEOUT = 60.0
"""Seconds a read may wait for data before it counts as a (transient) failure."""
MIN_RATE = 64 * 1024.0
"""Bytes/s a remote transfer must sustain over RATE_WINDOW seconds of reading (an object store gives MB/s)."""
RATE_WINDOW = 30.0
"""Seconds of reading over which MIN_RATE is judged (time the consumer spends between reads does not count)."""
CHUNK = 1 << 18
"""Bytes asked of the server or command per system call; reads are served from it."""


class ShardMissing(OSError):
    """The file does not exist at the location (HTTP 404/410, no such local file): not retried."""


class ShardReadError(OSError):
    """A transient failure (reset, refused, timeout, HTTP 5xx, a failing pipe command): retried, then given up."""


class ShardSlow(ShardReadError):
    """Bytes kept coming, but slower than the minimum rate: retried (resumed), then given up as slow."""


@dataclass(frozen=True)
class Limits:
    """Time bounds of one remote read (see the module docstring); min_rate 0 turns the rate check off."""
    timeout: float = TIMEOUT
    min_rate: float = MIN_RATE
    rate_window: float = RATE_WINDOW


class Attempts:
    """The retry budget of one file: 1 + len(RETRY_DELAYS) attempts, shared by reopenings and Range resumptions."""

    def __init__(self):
        self.delays, self.used, self.retries = tuple(RETRY_DELAYS), 0, 0

    @property
    def total(self) -> int:
        return len(self.delays) + 1

    def next(self) -> bool:
        """Sleep the back-off and return True when another attempt is allowed."""
        if self.used > len(self.delays):
            return False
        if self.used:
            time.sleep(self.delays[self.used - 1])
            self.retries += 1
        self.used += 1
        return True


def kind(location: str) -> str:
    """'http', 'pipe' or 'local'."""
    if location.startswith(("http://", "https://")):
        return "http"
    if location.startswith("pipe:"):
        return "pipe"
    return "local"


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def check_name(name: str) -> str | None:
    """Why `name` is not a plain file name relative to a manifest's location (None when it is)."""
    if kind(name) == "pipe":
        return "a pipe: command"
    if _SCHEME.match(name) or name.startswith("//"):
        return "a URL"
    if os.path.isabs(name) or name.startswith("~"):
        return "an absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "a path out of the manifest's folder"
    if not name.strip() or "\x00" in name:
        return "not a file name"
    return None


def join(location: str, name: str, trust: bool = False) -> str:
    """The URL or path of file `name` at `location`. A name that is itself a URL, a pipe: or an absolute path is
    kept only with `trust` (the user opted in to a manifest that places streams elsewhere); otherwise ValueError."""
    why = check_name(name)
    if why is not None:
        if not trust:
            raise ValueError(f"{name!r} is {why}, not a name relative to {location!r}")
        if why != "a path out of the manifest's folder":
            return name
    k = kind(location)
    if k == "http":
        return location.rstrip("/") + "/" + name
    if k == "pipe":
        if "{}" not in location:
            raise ValueError(f"shard location {location!r}: a pipe: command needs {{}} where the file name goes, e.g. "
                             "'pipe:aws s3 cp s3://bucket/shards/{} -'")
        import shlex

        return location.replace("{}", shlex.quote(name))
    return os.path.join(location, name)


def expand(pattern: str) -> list[str]:
    """File names of a brace pattern (`syn-{000000..000127}.tar`), in order."""
    import braceexpand

    return list(braceexpand.braceexpand(pattern))


def open_url(url: str, timeout: float | Limits = TIMEOUT, attempts: Attempts | None = None,
             sha256: str | None = None) -> BinaryIO:
    """A readable binary stream of `url` (a path, http(s)://… or pipe:…). Raises ShardMissing or ShardReadError.

    `timeout` is a number of seconds or a Limits. A remote stream takes its resumptions from `attempts` (an HTTP
    transfer resumes inside the stream; the caller's next `attempts.next()` sees what is left). With `sha256`, a
    remote stream read to its end sets `digest_ok` (True/False); see RemoteStream."""
    limits = timeout if isinstance(timeout, Limits) else Limits(timeout=timeout)
    k = kind(url)
    if k == "local":
        try:
            return open(url, "rb")
        except FileNotFoundError as e:
            raise ShardMissing(f"{url}: no such file") from e
        except OSError as e:
            raise ShardReadError(f"{url}: {e.strerror or e}") from e
    cls = _HttpStream if k == "http" else _PipeStream
    return cls(url, limits, attempts or _one_attempt(), sha256)


def _one_attempt() -> Attempts:
    a = Attempts()
    a.delays = ()
    a.next()
    return a


def read_all(url: str, timeout: float | Limits = TIMEOUT) -> bytes:
    """The whole file at `url`, with the retry policy of the shard reader."""
    attempts = Attempts()
    last: Exception | None = None
    while attempts.next():
        try:
            with open_url(url, timeout, attempts) as f:
                return f.read()
        except ShardMissing:
            raise
        except OSError as e:  # ShardReadError, or a read that failed half-way
            last = e
    raise ShardReadError(f"{url}: unreadable after {attempts.total} attempts ({last})")


class RemoteStream:
    """A remote file read with bounded time. read(n) returns n bytes (fewer only at the end); a failure raises a
    ShardReadError and is kept in `failed` (for the reader to tell it from a corrupt tar). `digest_ok` is None until
    the whole file was delivered, then whether its sha256 is the expected one."""

    def __init__(self, url: str, limits: Limits, attempts: Attempts, sha256: str | None):
        self.url, self.limits, self.attempts = url, limits, attempts
        self.failed: Exception | None = None
        self.pos = 0  # bytes received (the Range of a resumption starts here)
        self.digest_ok: bool | None = None
        self._want = sha256
        self._sha = hashlib.sha256() if sha256 else None
        self._win_t = self._win_b = 0.0
        self._eof = False
        self._buf, self._off = b"", 0  # received, not yet delivered

    # subclasses: _chunk(n) -> bytes (b"" at the end; raises ShardReadError); _recover(err) -> None when the
    # transfer goes on, else the error to fail with; _finish() at the end (may raise ShardReadError)
    def _rate(self, nbytes: int, dt: float) -> None:
        lim = self.limits
        if lim.min_rate <= 0:
            return
        self._win_t += dt
        self._win_b += nbytes
        if self._win_t >= lim.rate_window:
            rate = self._win_b / self._win_t
            self._win_t = self._win_b = 0.0
            if rate < lim.min_rate:
                raise ShardSlow(f"{self.url}: {rate:.0f} B/s over {lim.rate_window:g} s, below the minimum "
                                f"{lim.min_rate:.0f} B/s")

    def read(self, n: int = -1) -> bytes:
        buf, off = self._buf, self._off
        if 0 <= n <= len(buf) - off:  # tarfile's 10 KiB reads are served from the last chunk received
            self._off = off + n
            return buf[off:off + n]
        if self.failed is not None:
            raise self.failed
        parts, got = ([buf[off:]] if off < len(buf) else []), len(buf) - off
        self._buf, self._off = b"", 0
        t = time.monotonic()
        while not self._eof and (n < 0 or got < n):
            try:
                data = self._chunk(CHUNK)
                now = time.monotonic()
                self._rate(len(data), now - t)
                t = now
                if not data:
                    self._finish()
                    self._eof = True
                    break
            except ShardReadError as e:
                self.failed = self._recover(e)
                if self.failed is not None:
                    raise self.failed from None
                t = time.monotonic()
                continue
            parts.append(data)
            got += len(data)
            self.pos += len(data)
            if self._sha is not None:
                self._sha.update(data)
        if self._eof and self._sha is not None and self.digest_ok is None:
            self.digest_ok = self._sha.hexdigest() == self._want
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if 0 <= n < len(data):
            self._buf, self._off = data, n
            return data[:n]
        return data

    def _finish(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _http_error(url: str, e: Exception) -> OSError:
    if isinstance(e, urllib.error.HTTPError):
        if e.code in (404, 410):
            return ShardMissing(f"{url}: HTTP {e.code}")
        return ShardReadError(f"{url}: HTTP {e.code} {e.reason}")
    return ShardReadError(f"{url}: {getattr(e, 'reason', None) or e}")


class _HttpStream(RemoteStream):
    """HTTP(S) through urllib; idle reads end at the socket timeout, a broken transfer resumes with Range."""

    def __init__(self, url, limits, attempts, sha256):
        super().__init__(url, limits, attempts, sha256)
        self.resp = self._open({})
        self.validator = self.resp.headers.get("ETag") or self.resp.headers.get("Last-Modified")

    def _open(self, headers: dict):
        try:
            return urllib.request.urlopen(urllib.request.Request(self.url, headers=headers),
                                          timeout=self.limits.timeout)
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
            raise _http_error(self.url, e) from e

    def _chunk(self, n: int) -> bytes:
        try:
            data = self.resp.read1(n)
        except (OSError, http.client.HTTPException, ValueError) as e:  # reset, timeout, closed
            raise ShardReadError(f"{self.url}: read failed: {type(e).__name__}: {e}") from e
        if not data and self.resp.length:
            raise ShardReadError(f"{self.url}: connection closed with {self.resp.length} bytes of the body missing")
        return data

    def _recover(self, err: ShardReadError) -> OSError | None:
        """Reopen at byte `pos` (Range), or from 0 discarding `pos` bytes when the server answers 200."""
        self._close_resp()
        while self.attempts.next():
            headers = {"Range": f"bytes={self.pos}-"}
            if self.validator:
                headers["If-Range"] = self.validator  # a changed object answers 200: re-read, never spliced
            try:
                self.resp = self._open(headers)
                start = _range_start(self.resp.headers.get("Content-Range")) if self.resp.status == 206 else 0
                if start != 0 and start != self.pos:
                    raise ShardReadError(f"{self.url}: asked for byte {self.pos}, got {start}")
                self._skip(self.pos - start)
            except ShardMissing as e:
                return e
            except ShardReadError as e:
                self._close_resp()
                err = e
                continue
            self._win_t = self._win_b = 0.0
            return None
        return err

    def _skip(self, left: int) -> None:
        t = time.monotonic()
        while left > 0:
            data = self._chunk(min(CHUNK, left))
            if not data:
                raise ShardReadError(f"{self.url}: shorter than the {self.pos} bytes already read")
            left -= len(data)
            now = time.monotonic()
            self._rate(len(data), now - t)  # re-reading is held to the same minimum rate
            t = now

    def _close_resp(self) -> None:
        try:
            self.resp.close()
        except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is dropped either way
            pass

    def close(self) -> None:
        self._close_resp()


def _range_start(content_range: str | None) -> int:
    m = re.match(r"bytes (\d+)-", content_range or "")
    return int(m.group(1)) if m else -1


class _PipeStream(RemoteStream):
    """A `pipe:` command in its own process group (session); reads wait in select() up to the timeout, and the whole
    group is killed at a deadline or on close (a compound command's children included). No extra thread."""

    def __init__(self, url, limits, attempts, sha256):
        super().__init__(url, limits, attempts, sha256)
        try:
            self.proc = subprocess.Popen(url[len("pipe:"):], shell=True, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            raise ShardReadError(f"{url}: cannot start the command: {e}") from e
        self.fd = self.proc.stdout.fileno()
        try:  # a larger pipe lets the command write ahead while the reader works (Linux; else the default 64 KiB)
            import fcntl

            fcntl.fcntl(self.fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), CHUNK * 4)
        except OSError:
            pass

    def _kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _chunk(self, n: int) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], self.limits.timeout)
        if not ready:
            self._kill()
            raise ShardReadError(f"{self.url}: no data for {self.limits.timeout:g} s (command killed)")
        try:
            return os.read(self.fd, n)
        except OSError as e:
            raise ShardReadError(f"{self.url}: read failed: {e}") from e

    def _recover(self, err: ShardReadError) -> OSError | None:
        self._kill()  # a slow or stalled command: the reader starts it again with its next attempt
        return err

    def _finish(self) -> None:
        try:
            code = self.proc.wait(timeout=self.limits.timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            raise ShardReadError(f"{self.url}: closed its output but did not exit within "
                                 f"{self.limits.timeout:g} s (killed)") from None
        if code != 0:
            raise ShardReadError(f"{self.url}: command exited with status {code}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self._kill()  # closed before the end (or failed): nothing of the command outlives its stream
        self.proc.stdout.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


__all__ = ["Attempts", "Limits", "MIN_RATE", "RATE_WINDOW", "RETRY_DELAYS", "TIMEOUT", "RemoteStream",
           "ShardMissing", "ShardReadError", "ShardSlow", "check_name", "expand", "join", "kind", "open_url",
           "read_all"]
