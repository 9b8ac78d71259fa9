"""A ``SyncTransport`` over HTTP with the standard library: ``POST <hub>/v1/sync``."""

import json
import urllib.error
import urllib.request

from ._ffi.vigie import SyncTransport, TransportError


class HubTransport(SyncTransport):
    """Carries sync messages to a Vigie hub, authenticated by the device's enrolment token.

    >>> store.sync_with(HubTransport("https://hub.example.org", token), None)
    """

    def __init__(self, hub_url: str, token: str, timeout: float = 120.0):
        self._url = hub_url.rstrip("/") + "/v1/sync"
        self._authorization = "Bearer " + token.strip()
        self._timeout = timeout

    def exchange(self, request: bytes) -> bytes:
        http_request = urllib.request.Request(
            self._url,
            data=bytes(request),
            method="POST",
            headers={
                "Authorization": self._authorization,
                "Content-Type": "application/octet-stream",
            },
        )
        try:
            with urllib.request.urlopen(http_request, timeout=self._timeout) as response:
                return response.read()
        except urllib.error.HTTPError as e:
            raise TransportError.Http(status=e.code, reason=_hub_message(e)) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", None) or e
            raise TransportError.Unreachable(reason=str(reason)) from None


def _hub_message(error: urllib.error.HTTPError) -> str:
    """The hub's errors are JSON ``{"error": "..."}``."""
    try:
        return str(json.loads(error.read())["error"])
    except Exception:
        return error.reason or ""
