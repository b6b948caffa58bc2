"""What the local HTTP servers share (the review page, the annotation page, the dev-generation
picks page and ``lima-eval serve``): who may talk to them, JSON in and out, quiet logs, and for
pages a strict Content-Security-Policy.

Safe by construction, in one place (``LocalServer`` and ``JsonHandler``):

- **Host.** Bound to a loopback address (the default), a request's ``Host`` must name the
  server as 127.0.0.1, localhost or [::1] with its port, so a DNS-rebinding page
  (``evil.example`` resolving to 127.0.0.1) gets 403.
- **Origin.** A browser request from another origin (another site, or another port on this
  machine: ``Sec-Fetch-Site`` ``same-site`` or ``cross-site``, or an ``Origin`` that is not this
  server) gets 403, except a page's top-level navigation to ``/``.
- **State changes** (POST) need ``Content-Type: application/json`` (which a cross-origin page
  cannot send without a CORS preflight, and preflights are refused) and a same-origin ``Origin``
  (or ``Sec-Fetch-Site: same-origin``).
- **Token.** Every server has a random token; pages send it back in ``X-Lima-Token`` on every
  ``/api/`` request. On loopback the page carries it (only a same-origin script can read it);
  bound elsewhere (``--host 0.0.0.0``) a token must be given and is never put in a page: the
  person opens ``URL#token=...``. ``lima-eval serve`` takes the token as its API key
  (``Authorization: Bearer ...``) and requires one only off loopback.
- Every other method gets 403; pages may not be framed.

Text from dumps and models reaches a page only as JSON put in with ``textContent`` or as
Markdown rendered here with raw HTML disabled, so markup in it shows as text.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
import secrets
import socket
import socketserver
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, ClassVar

from markdown_it import MarkdownIt

from lima.commands import UsageError

_md = MarkdownIt("commonmark", {"html": False})

PAGE_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'none'; frame-ancestors 'none'; form-action 'none'; "
    "base-uri 'none'"
)
TOKEN_HEADER = "X-Lima-Token"
SCRIPT_PATH = "/lima-web.js"


def render(text: str) -> str:
    """Markdown to HTML with raw HTML shown as text."""
    return str(_md.render(text))


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def require_token(host: str, token: str | None, option: str = "--token") -> None:
    """``UsageError`` unless ``host`` is loopback or a (non-empty) token is given."""
    if token is not None and not token.strip():
        raise UsageError(f"{option} must not be empty")
    if not is_loopback(host) and not token:
        raise UsageError(
            f"--host {host} makes this server reachable from other machines; "
            f"give {option} SECRET as well (the people you hand the link to need it)"
        )


def script() -> str:
    """The page half of the mechanism: finds the token and sends it back (``LimaWeb.api``),
    and runs a page's actions one after another so no key press is lost (``LimaWeb.queue``)."""
    return resources.files("lima").joinpath("web.js").read_text(encoding="utf-8")


class LocalServer(ThreadingHTTPServer):
    """A threading HTTP server that knows the names it may be reached by and its token.

    A loopback host needs nothing more; any other host needs ``token`` (``UsageError``
    otherwise) and ``warning`` says so for the command line to print."""

    daemon_threads = True
    request_queue_size = 1024  # a burst of connections waits in the backlog, never reset
    app: Any = None  # what the handler serves; its close() runs on server_close()
    refusals: list[str]  # "METHOD path: reason" of every refused request, for tests and logs

    def __init__(
        self,
        host: str,
        port: int,
        handler: type[BaseHTTPRequestHandler],
        token: str | None = None,
        option: str = "--token",
    ) -> None:
        require_token(host, token, option)
        self.loopback = is_loopback(host)
        self.host = host
        self.refusals = []
        self.token_given = token is not None
        self.token = token if token is not None else secrets.token_urlsafe(32)
        if ":" in host.strip("[]"):
            self.address_family = socket.AF_INET6
        super().__init__((host.strip("[]"), port), handler)
        bound = self.server_address[1]
        self.port = int(bound)
        bare = host.strip("[]")
        names = {"127.0.0.1", "localhost", "[::1]", f"[{bare}]" if ":" in bare else bare}
        self.hosts: frozenset[str] | None = (
            frozenset(f"{n}:{self.port}".lower() for n in names) if self.loopback else None
        )

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the FQDN of the host, which can hang on a machine
        # without DNS; the name is not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.host
        self.server_port = int(self.server_address[1])

    def server_close(self) -> None:
        super().server_close()
        close = getattr(self.app, "close", None)
        if close is not None:
            close()

    @property
    def warning(self) -> str | None:
        if self.loopback:
            return None
        return (
            f"warning: bound to {self.host}, so other machines can reach this server; "
            "only requests carrying the token are answered, over plain HTTP"
        )

    def url(self, path: str = "/", *, with_token: bool | None = None) -> str:
        """The address to open; off loopback it carries the token in the fragment (which the
        browser never sends to a server)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host.strip("[]")
        base = f"http://{_authority(host, self.port)}{path}"
        if with_token if with_token is not None else not self.loopback:
            base += "#token=" + self.token
        return base


class JsonHandler(BaseHTTPRequestHandler):
    """A request handler that checks every request (see the module's text) before ``get`` or
    ``post`` sees it, and answers JSON (and, for pages, HTML under ``PAGE_CSP``).

    ``kind = "page"`` for the browser pages; ``"api"`` for ``lima-eval serve``, whose clients
    are programs (no Origin, the token as a bearer key, only when one was given)."""

    server: LocalServer
    kind: ClassVar[str] = "page"
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    # -- the checks -------------------------------------------------------------------------

    def _origin_ok(self) -> bool:
        origin = self.headers.get("Origin")
        return origin is None or origin.lower() == f"http://{self.headers.get('Host', '')}".lower()

    def _refusal(self, method: str) -> str | None:
        """Why this request is refused, or None."""
        host = (self.headers.get("Host") or "").strip().lower()
        if self.server.hosts is not None and host not in self.server.hosts:
            return f"Host {host or '(none)'} is not this server"
        path = self.path.split("?", 1)[0]
        site = (self.headers.get("Sec-Fetch-Site") or "").lower()
        navigation = (
            method == "GET" and path == "/" and self.headers.get("Sec-Fetch-Mode") == "navigate"
        )
        if site in ("cross-site", "same-site") and not navigation:
            return "a request from another origin"
        if not self._origin_ok():
            return "a request from another origin"
        if method == "POST":
            ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if ctype != "application/json":
                return "a state change needs Content-Type: application/json"
            if self.kind == "page" and self.headers.get("Origin") is None and site != "same-origin":
                return "a state change needs a same-origin Origin header"
        needs_token = path.startswith("/api/") or method == "POST"
        if (
            self.kind == "page"
            and needs_token
            and not self._token_ok(self.headers.get(TOKEN_HEADER))
        ):
            return f"missing or wrong {TOKEN_HEADER}"
        return None

    def _token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(
            given.encode("utf-8", "surrogateescape"), self.server.token.encode()
        )

    def bearer_ok(self) -> bool:
        """For ``kind = "api"``: the bearer key matches the token (always, when none was
        given and the server is on loopback)."""
        if not self.server.token_given:
            return True
        auth = self.headers.get("Authorization") or ""
        scheme, _, key = auth.partition(" ")
        return scheme.lower() == "bearer" and self._token_ok(key.strip())

    def refuse(self, reason: str, status: int = HTTPStatus.FORBIDDEN) -> None:
        self.server.refusals.append(f"{self.command} {self.path.split('?', 1)[0]}: {reason}")
        self.json({"error": {"message": reason, "type": "forbidden"}}, status)

    def _guarded(self, method: str) -> bool:
        reason = self._refusal(method)
        if reason is not None:
            self.refuse(reason)
            return False
        return True

    def do_GET(self) -> None:
        if not self._guarded("GET"):
            return
        if self.kind == "page" and self.path.split("?", 1)[0] == SCRIPT_PATH:
            self.send(200, script().encode(), "text/javascript; charset=utf-8")
            return
        self.get()

    def do_POST(self) -> None:
        if self._guarded("POST"):
            self.post()

    def _not_allowed(self) -> None:
        self.refuse(f"{self.command} is not allowed here")

    do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def get(self) -> None:
        self.json({"error": "not found"}, HTTPStatus.NOT_FOUND)

    def post(self) -> None:
        self.json({"error": "not found"}, HTTPStatus.NOT_FOUND)

    # -- answers ----------------------------------------------------------------------------

    def send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        if ctype.startswith("text/html"):
            self.send_header("Content-Security-Policy", PAGE_CSP)
        self.end_headers()
        self.wfile.write(body)

    def page(self, text: str) -> None:
        """An HTML page; on loopback it carries the server's token for its script."""
        if self.server.loopback:
            meta = f'<meta name="lima-token" content="{html.escape(self.server.token)}">'
            text = text.replace("<head>", "<head>\n" + meta, 1)
        self.send(200, text.encode(), "text/html; charset=utf-8")

    def json(self, obj: Any, status: int = 200) -> None:
        self.send(status, json.dumps(obj).encode(), "application/json")

    def read_json(self) -> Any:
        """The request's JSON body (``ValueError`` when it is not JSON)."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise ValueError("Content-Length is not a number") from None
        if length < 0 or length > 64 * 2**20:
            raise ValueError("the body must be at most 64 MiB")
        return json.loads(self.rfile.read(length) or b"{}")

    def read_object(self) -> dict[str, Any]:
        """The request's JSON body, which must be an object."""
        body = self.read_json()
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        return body
