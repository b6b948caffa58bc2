"""What the local HTTP servers share (the review page, the annotation page, ``lima-eval
serve``): JSON in and out, quiet logs, and for pages a strict Content-Security-Policy. Text from
dumps and models reaches a page only as JSON put in with ``textContent`` or as Markdown rendered
here with raw HTML disabled, so markup in it shows as text."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False})

PAGE_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'none'"
)


def render(text: str) -> str:
    """Markdown to HTML with raw HTML shown as text."""
    return str(_md.render(text))


class JsonHandler(BaseHTTPRequestHandler):
    """A request handler that answers JSON (and, for pages, HTML under ``PAGE_CSP``)."""

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if ctype.startswith("text/html"):
            self.send_header("Content-Security-Policy", PAGE_CSP)
        self.end_headers()
        self.wfile.write(body)

    def json(self, obj: Any, status: int = 200) -> None:
        self.send(status, json.dumps(obj).encode(), "application/json")

    def read_json(self) -> Any:
        """The request's JSON body (``ValueError`` when it is not JSON)."""
        length = int(self.headers.get("Content-Length", "0"))
        return json.loads(self.rfile.read(length) or b"{}")
