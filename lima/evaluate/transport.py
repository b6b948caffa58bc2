"""One POST to a judge endpoint, failing safe.

- No redirect is followed: a 3xx ends the run with an error naming where it pointed, so the
  key in ``Authorization`` is never sent to any host but the configured one.
- A total deadline per request: a watchdog shuts the socket down when it passes, however
  slowly the server trickles bytes (a per-read timeout would let a byte a second go on).
- A reply that is not the expected JSON (HTML, a truncated body, ``{"choices": []}``, no
  ``choices``, no text in the message) is a ``Fault``, retried like a 5xx; so are transport
  errors, 408/409/425/429 and 5xx, with the server's ``Retry-After`` when it sends one.
- 400/413/422 refuse this one request (``Refused``); 401/403/404/405 and other 4xx refuse
  every request (``JudgeError``), so the run stops.
- An ``https`` endpoint is reached through ``https_proxy`` (CONNECT, so the proxy never sees
  the key) unless ``no_proxy`` names it; an ``http`` endpoint is always reached directly.
- Error messages never contain the key.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import socket
import threading
import time
import urllib.request
from datetime import UTC
from urllib.parse import urlsplit

from lima.errors import LimaError

MAX_REPLY_BYTES = 8 << 20


class JudgeError(LimaError):
    """The judge endpoint refuses every request (auth, a wrong URL, a redirect) or kept
    failing; the run stops."""


class Fault(Exception):
    """A failed request worth retrying, with the wait the server asked for, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Refused(Exception):
    """The endpoint refused this one request (400/413/422): retrying would not help."""


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JudgeError(f"--judge {url}: must be an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018  (raises on a port out of range)
    except ValueError as e:
        raise JudgeError(f"--judge {url}: {e}") from None


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def _excerpt(data: bytes) -> str:
    text = data[:200].decode("utf-8", "replace")
    return " ".join(text.split()) + ("..." if len(data) > 200 else "")


def _connection(url: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "http":
        return http.client.HTTPConnection(host, parts.port, timeout=timeout)
    proxy = urllib.request.getproxies_environment().get("https")
    if proxy and not urllib.request.proxy_bypass(host):
        p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        conn = http.client.HTTPSConnection(p.hostname or "", p.port or 8080, timeout=timeout)
        conn.set_tunnel(host, parts.port or 443)
        return conn
    return http.client.HTTPSConnection(host, parts.port, timeout=timeout)


def _read(resp: http.client.HTTPResponse, limit: int) -> bytes:
    chunks, size = [], 0
    while size <= limit:
        chunk = resp.read(min(65536, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise Fault(f"reply larger than {limit} bytes")
    data = b"".join(chunks)
    declared = resp.getheader("Content-Length")
    if declared and declared.strip().isdigit() and int(declared) != len(data):
        raise Fault(f"truncated reply: {len(data)} of {int(declared)} bytes")
    return data


def content(data: bytes, ctype: str) -> str:
    """The text of ``choices[0].message.content`` in a chat-completions reply, or a
    ``Fault`` saying what is wrong with the reply."""
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):
        raise Fault(f"reply is not JSON ({ctype or 'no Content-Type'}): "
                    f"{_excerpt(data)!r}") from None  # fmt: skip
    if not isinstance(payload, dict):
        raise Fault("reply is JSON but not an object")
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices:
        err = payload.get("error")
        detail = f" (error: {_excerpt(json.dumps(err).encode())})" if err else ""
        raise Fault(f"reply has no choices{detail}")
    first = choices[0]
    message = first.get("message") if isinstance(first, dict) else None
    text = message.get("content") if isinstance(message, dict) else None
    if isinstance(text, list):  # content given as parts
        parts = [p.get("text") for p in text if isinstance(p, dict)]
        text = "".join(p for p in parts if isinstance(p, str)) if parts else None
    if not isinstance(text, str):
        raise Fault("reply has no text in choices[0].message.content")
    return text


def post(url: str, data: bytes, headers: dict[str, str], timeout: float,
         secret: str | None = None, limit: int = MAX_REPLY_BYTES) -> str:  # fmt: skip
    """The text of the judge's reply to one request, within ``timeout`` seconds in all."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = _connection(url, timeout)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        try:
            conn.request("POST", path, body=data, headers=headers)
            resp = conn.getresponse()
            status = resp.status
            body = _read(resp, limit)
        except (OSError, http.client.HTTPException, ValueError) as e:
            if expired.is_set():
                raise Fault(f"{url}: no complete reply within {timeout:g} s") from None
            raise Fault(_redact(f"{url}: {type(e).__name__}: {e}", secret)) from None
        except Fault as e:
            if expired.is_set():
                raise Fault(f"{url}: no complete reply within {timeout:g} s") from None
            raise Fault(f"{url}: {e}") from None
        if expired.is_set():
            raise Fault(f"{url}: no complete reply within {timeout:g} s")
    finally:
        watchdog.cancel()
        conn.close()
    return _reply(url, status, resp, body, secret)


def _reply(url: str, status: int, resp: http.client.HTTPResponse, body: bytes,
           secret: str | None) -> str:  # fmt: skip
    said = _redact(_excerpt(body), secret)
    if 300 <= status < 400:
        where = _redact(resp.getheader("Location") or "nowhere", secret)
        raise JudgeError(
            f"{url}: HTTP {status} redirect to {where} refused: the judge's key is only ever "
            "sent to the URL given; give the URL it redirects to as --judge if you trust it"
        )
    if status in (408, 409, 425, 429) or status >= 500:
        raise Fault(f"{url}: HTTP {status}: {said!r}", retry_after(resp.getheader("Retry-After")))
    if status in (400, 413, 422):
        raise Refused(f"{url}: HTTP {status}: {said!r}")
    if status >= 400 or status < 200:
        raise JudgeError(f"{url}: HTTP {status}: {said!r}")
    try:
        return content(body, resp.getheader("Content-Type") or "")
    except Fault as e:
        raise Fault(_redact(f"{url}: {e}", secret)) from None
