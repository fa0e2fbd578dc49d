"""The errors the proxy's API answers with, in Toxiproxy's words and status codes.

Clients match on these messages (the Go client's tests compare them verbatim), so the
fixed ones below are part of the API, not prose.
"""

from __future__ import annotations

import resource  # imported now: importing it when out of descriptors would itself fail
from typing import Any


class ApiError(Exception):
    """A request the server refuses: ``message`` and the HTTP ``status`` to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status}

    def joined(self, detail: str) -> "ApiError":
        """This error with a detail appended, e.g. ``missing required field: name``."""
        return ApiError(f"{self.message}: {detail}", self.status)


BAD_REQUEST_BODY = ApiError("bad request body", 400)
MISSING_FIELD = ApiError("missing required field", 400)
PROXY_NOT_FOUND = ApiError("proxy not found", 404)
PROXY_EXISTS = ApiError("proxy already exists", 409)
INVALID_STREAM = ApiError("stream was invalid, can be either upstream or downstream", 400)
INVALID_TOXIC_TYPE = ApiError("invalid toxic type", 400)
TOXIC_EXISTS = ApiError("toxic already exists", 409)
TOXIC_NOT_FOUND = ApiError("toxic not found", 404)
BODY_TOO_LARGE = ApiError("request body too large", 413)


def out_of_files(what: str) -> str:
    """``what`` failed for want of file descriptors: say which limit, and how to get out."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (
        f"{what}: too many open files (RLIMIT_NOFILE={soft}); close connections or delete proxies, "
        "or raise the limit (ulimit -n)"
    )


def listen_error(message: str) -> ApiError:
    """A proxy that cannot listen where asked: Toxiproxy answers 500 with the OS's reason."""
    return ApiError(message, 500)
