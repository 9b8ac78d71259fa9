"""A ``SyncTransport`` over HTTP with the standard library: ``POST <hub>/v1/sync`` for records,
``POST <hub>/v1/attachments`` for attachments' chunks."""

import errno
import os
import http.client
import ipaddress
import json
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from ._ffi.vigie import SyncTransport, TransportError


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is not followed: urllib would send the device's token to whatever address it
    names (another host, or http after https), and a POST again as a GET."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class _Tracked:
    """Makes a transport's connections through ``make`` and keeps the one under way in
    ``transport._current``, so that ``abort`` can cut it from another thread."""

    def __init__(self, transport, make):
        self._transport, self._make = transport, make

    def __call__(self, host, **kwargs):
        connection = self._make(host, **kwargs)
        self._transport._current = connection
        return connection


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, transport):
        super().__init__()
        self._tracked = _Tracked(transport, http.client.HTTPConnection)

    def http_open(self, req):
        return self.do_open(self._tracked, req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, transport, context):
        super().__init__(context=context)
        self._tracked = _Tracked(transport, http.client.HTTPSConnection)

    def https_open(self, req):
        return self.do_open(self._tracked, req, context=self._context)


# The most a hub's answer holds: a sync answer is as large as its request asks (a few MiB at
# most), an attachment's chunk 256 KiB. A larger or endless body is not the hub's (a proxy, a
# portal, a server in its place): read no further, rather than until the phone's memory is gone.
_MAX_ANSWER_BYTES = 64 * 1024 * 1024
# An error's body is a line of JSON.
_MAX_ERROR_BYTES = 64 * 1024


def _read_bounded(response, limit: int, deadline: float) -> bytes:
    """The body of ``response``, read up to ``limit`` bytes and until ``deadline``
    (``time.monotonic``): a body trickled a byte at a time keeps no sync waiting for ever (the
    timeout bounds each read only)."""
    chunks, total = [], 0
    # What has come so far, without waiting for a whole buffer (a body trickled a byte at a
    # time would otherwise be waited for to its end).
    read = getattr(response, "read1", None) or response.read
    while True:
        if time.monotonic() > deadline:
            raise _too_slow()
        chunk = read(min(65536, limit + 1 - total))
        if not chunk:
            # Fewer bytes than the answer declared: the link cut it.
            if getattr(response, "length", None):
                raise _cut()
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise TransportError.Unreachable(
                reason=f"an answer larger than any hub's ({limit} bytes) was not read: something on the way answered in the hub's place"
            )
        chunks.append(chunk)


def _too_slow() -> TransportError:
    return TransportError.Unreachable(
        reason="the hub's answer did not come whole in time: the link is too slow, or something on the way holds it back"
    )


def _not_the_hub(status: int) -> TransportError:
    """An answer in a form the hub never gives (a web page, where the hub answers its own
    messages or JSON): a Wi-Fi that asks to sign in, or a proxy, answered in its place."""
    return TransportError.Unreachable(
        # One literal each, as the core's catalogues translate it (`messages/fr.txt`).
        reason=f"the network answered {status} in the hub's place, not with its message: a Wi-Fi or a proxy that asks to sign in first? Nothing was lost"
    )


def _in_clear(hub_url: str) -> bool:
    """Whether the address would carry records and the token in clear across a network:
    http:// to a host other than this machine's loopback (127.0.0.0/8, ::1, localhost)."""
    parts = urllib.parse.urlsplit(hub_url)
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _check_arguments(hub_url, token, timeout, exchange_timeout, allow_cleartext, cafile):
    """Refuses, when the transport is made, an address or a wait a sync could only fail on
    later, as "hub unreachable" (``hub.example.org`` with no scheme, a timeout of -1, NaN or
    "60"): each names its argument."""
    if not isinstance(hub_url, str):
        raise TypeError("hub_url: must be the hub's address, a str")
    parts = urllib.parse.urlsplit(hub_url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(
            "hub_url: must be the hub's address with its scheme, https://hub.example.org"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0 or any(c in hub_url for c in "\x00\r\n\t "):
        raise ValueError("hub_url: the port must be a number from 1 to 65535, and the address "
                         "hold no space or control character")
    # An enrolment token is printable ASCII (parse_enrolment_token says what it holds).
    if (not isinstance(token, str) or not token.strip()
            or not all("!" <= c <= "~" for c in token.strip())):
        raise ValueError("token: must be the device's enrolment token")
    for name, value in (("timeout", timeout), ("exchange_timeout", exchange_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name}: must be a number of seconds")
        if not (0 < value <= _LONGEST_WAIT):
            raise ValueError(f"{name}: must be a number of seconds above 0, at most a day")
    if not isinstance(allow_cleartext, bool):
        raise TypeError("allow_cleartext: must be True or False")
    if cafile is not None and not (isinstance(cafile, (str, os.PathLike)) and os.path.isfile(cafile)):
        raise ValueError("cafile: must be the path of the hub's authority's certificate (PEM)")


# The longest wait a transport takes: a day (a timer of 1e300 seconds cannot be set).
_LONGEST_WAIT = 86_400


class HubTransport(SyncTransport):
    """Carries sync messages to a Vigie hub, authenticated by the device's enrolment token.

    >>> store.sync_with(HubTransport("https://hub.example.org", token))

    ``timeout`` bounds each wait for the hub (connecting, each read), ``exchange_timeout`` one
    whole exchange, its headers included (an answer trickled a byte at a time is cut there;
    a 1 MiB answer takes under 3 minutes over 2G). An answer the hub never gives (a web page, a body larger than any hub's)
    is ``TransportError.Unreachable``: something on the way answered in its place.

    ``cafile``: the authority (PEM) that signed the hub's TLS certificate when it is not a
    public one (a ministry's own, a self-signed hub): only it is trusted for this hub. An
    ``http://`` hub other than this machine's own is refused (``ValueError``): records and the
    token would cross the network in clear; ``allow_cleartext=True`` insists (a closed network).
    """

    def __init__(
        self,
        hub_url: str,
        token: str,
        timeout: float = 120.0,
        cafile: str = None,
        allow_cleartext: bool = False,
        exchange_timeout: float = 600.0,
    ):
        _check_arguments(hub_url, token, timeout, exchange_timeout, allow_cleartext, cafile)
        if not allow_cleartext and _in_clear(hub_url):
            raise ValueError(
                "hub_url: an http:// address carries children's records and the device's token "
                "in clear across the network: give the hub's https:// address (or "
                "allow_cleartext=True on a closed network)"
            )
        try:
            context = ssl.create_default_context(cafile=cafile)
        except ssl.SSLError:
            raise ValueError(
                "cafile: holds no certificate (PEM) of the hub's authority"
            ) from None
        self._opener = urllib.request.build_opener(
            _NoRedirect, _HTTP(self), _HTTPS(self, context)
        )
        self._current = None
        self._aborted = False
        base = hub_url.rstrip("/")
        self._sync_url = base + "/v1/sync"
        self._attachments_url = base + "/v1/attachments"
        self._authorization = "Bearer " + token.strip()
        self._timeout = timeout
        self._exchange_timeout = exchange_timeout

    def abort(self):
        """Cancels the sync: cuts the exchange under way, if any, from any thread, and every
        later one of this transport. The session ends with a ``Transport`` error saying it was
        cancelled; what was applied stays, and the next sync (with a new transport) goes on
        from there."""
        self._aborted = True
        self._cut_current()

    def _cut_current(self):
        """Cuts the connection of the exchange under way, if any (from any thread)."""
        connection = self._current
        if connection is not None and connection.sock is not None:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def exchange(self, request: bytes) -> bytes:
        return self._post(self._sync_url, request)

    def exchange_attachment(self, request: bytes) -> bytes:
        return self._post(self._attachments_url, request)

    def _post(self, url: str, request: bytes) -> bytes:
        if self._aborted:
            raise _cancelled()
        # The exchange's deadline, its status line and headers included (a server sending them
        # a byte at a time would hold the sync for ever): past it, the connection is cut.
        expired = threading.Event()

        def expire():
            expired.set()
            self._cut_current()

        timer = threading.Timer(self._exchange_timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            return self._send(url, request)
        except TransportError:
            if self._aborted:
                raise _cancelled() from None
            if expired.is_set():
                raise _too_slow() from None
            raise
        finally:
            timer.cancel()

    def _send(self, url: str, request: bytes) -> bytes:
        http_request = urllib.request.Request(
            url,
            data=bytes(request),
            method="POST",
            headers={
                "Authorization": self._authorization,
                "Content-Type": "application/octet-stream",
            },
        )
        deadline = time.monotonic() + self._exchange_timeout
        try:
            with self._opener.open(http_request, timeout=self._timeout) as response:
                body = _read_bounded(response, _MAX_ANSWER_BYTES, deadline)
                # A hub's answer is never empty: an empty one is a link that dropped in the
                # answer's headers (a body cut short raises IncompleteRead below), not a
                # damaged message from the hub.
                if not body:
                    raise _cut()
                declared = response.headers.get("Content-Type")
                if declared and response.headers.get_content_type() != "application/octet-stream":
                    raise _not_the_hub(response.status)
                return body
        except urllib.error.HTTPError as e:
            if e.code == 413 and e.headers.get_content_type() == "application/octet-stream":
                # An attachment over the hub's limits: the body is the refusal, with its
                # figures, for the session to record (unless the link cut it).
                try:
                    refusal = _read_bounded(e, _MAX_ERROR_BYTES, deadline)
                except (http.client.HTTPException, OSError) as e:
                    raise _cut(e) from None
                if not refusal:
                    raise _cut()
                return refusal
            if 300 <= e.code < 400:
                raise TransportError.Http(status=e.code, reason=_redirected(e)) from None
            # The hub's refusals are JSON: a 401 or a 403 in another form is a portal's or a
            # proxy's, which must not read as a token to reissue or a right withheld.
            if e.code in (401, 403, 407, 511) and e.headers.get_content_type() != "application/json":
                raise _not_the_hub(e.code) from None
            body = _json_body(e, deadline)
            message = str(body.get("error", "")) if body else (e.reason or "")
            if e.code == 403 and body and body.get("wipe") is True:
                # The hub revoked this device: the app must wipe the profile, not retry.
                # With the order the hub signed, which the store checks before it wipes.
                order = body.get("order")
                raise TransportError.DeviceRevoked(
                    reason=message, order=order if isinstance(order, str) else ""
                ) from None
            raise TransportError.Http(status=e.code, reason=message) from None
        except http.client.HTTPException as e:
            # The connection closed before a whole answer came (no status line, a body cut;
            # `RemoteDisconnected` is an `OSError` too: caught here first).
            raise _cut(e) from None
        except (urllib.error.URLError, OSError) as e:
            raise TransportError.Unreachable(reason=_network_failure(e)) from None


# One literal: the catalogues' test reads the texts between quotes.
_REDIRECTED = "the hub's address answered with a redirect, not followed (the device's token goes to the hub's own address only; set the hub's URL to the address it serves)"


def _redirected(e: urllib.error.HTTPError) -> str:
    """Why a redirect was not followed, then where it pointed (its scheme and host only),
    after the words the catalogues translate."""
    target = urllib.parse.urlsplit(e.headers.get("Location") or "")
    if not target.netloc:
        return _REDIRECTED
    return f"{_REDIRECTED}: {target.scheme}://{target.netloc}"


def _network_failure(e: OSError) -> str:
    """Why the hub could not be reached, in words the catalogues translate (the system's own
    message, `[Errno 111] Connection refused`, reached French users as it was); else the
    failure's type."""
    reason = getattr(e, "reason", None)
    failure = reason if isinstance(reason, BaseException) else e
    if isinstance(failure, ConnectionRefusedError):
        return "the hub's address refused the connection: is the hub running, at this address?"
    if isinstance(failure, socket.gaierror):
        return "the hub's address was not found: no network, or a wrong address"
    if isinstance(failure, (TimeoutError, socket.timeout)):
        return "no answer from the hub in time: the link is too slow, or down"
    if isinstance(failure, ssl.SSLError):
        return "the hub's certificate was not accepted (a portal on the way, or a wrong address?)"
    if isinstance(failure, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return "the hub's answer was cut on the way"
    if isinstance(failure, OSError) and failure.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "no route to the hub: the device has no network"
    return f"the network failed: {type(failure).__name__}"


def _cancelled() -> TransportError:
    return TransportError.Unreachable(reason="the sync was cancelled on this device")


def _cut(e: Exception = None) -> TransportError:
    """A hub's answer the link cut on the way (in its status line, headers or body): the
    exception's type, when one was raised, names where."""
    if e is None:
        return TransportError.Unreachable(reason="the hub's answer was cut on the way")
    return TransportError.Unreachable(
        reason=f"the connection was cut before the hub's answer came whole ({type(e).__name__})"
    )


def _json_body(error: urllib.error.HTTPError, deadline: float):
    """The hub's errors are JSON ``{"error": "..."}`` (with ``"wipe": true`` for a revoked
    device); ``None`` if the body is not such an object (or larger than any hub's error)."""
    try:
        body = json.loads(_read_bounded(error, _MAX_ERROR_BYTES, deadline))
    except Exception:
        return None
    return body if isinstance(body, dict) else None
