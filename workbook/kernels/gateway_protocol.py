"""The gateway's wire protocol: its REST API and a kernel's WebSocket, nothing more.

:class:`Rest` sends JSON requests with the token in the ``Authorization`` header.
:class:`Channels` holds one kernel's WebSocket (``/api/kernels/{id}/channels``) in the
gateway's JSON framing, one message per text frame with a ``channel`` field. A reader thread
sorts the incoming messages by channel, and requests are built with ``jupyter_client``'s
:class:`~jupyter_client.session.Session`. What the messages mean (runs, timeouts, restarts) is
:mod:`workbook.kernels.gateway`'s business.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import threading
import urllib.error
import urllib.request
from typing import Any

from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import CloseCode
from websockets.sync.client import connect

from workbook.kernels.errors import KernelDied
from workbook.kernels.run_loop import MAX_MESSAGE_BYTES

__all__ = [
    "UNREACHABLE",
    "Channels",
    "GatewayUnavailable",
    "Rest",
    "SocketClosed",
    "SocketRefused",
    "reason",
]

_REST_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 10.0

UNREACHABLE = (
    "The kernel server is not reachable right now (it may be restarting), so your code could "
    "not run. Your code is saved. Try again in a minute."
)


class GatewayUnavailable(KernelDied):
    """The gateway cannot be reached; the message is meant for the student."""


class Rest:
    """The gateway's REST API: JSON in, JSON out, the token in the ``Authorization`` header."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def headers(self) -> dict[str, str]:
        """The headers every request (and the WebSocket handshake) carries."""
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def call(
        self, method: str, path: str, body: dict | None = None, timeout: float = _REST_TIMEOUT_S
    ) -> tuple[int, Any]:
        """Send one request; return ``(status, parsed body)``, also for HTTP error statuses.

        Raises:
            GatewayUnavailable: no answer (refused, timed out, connection reset).
        """
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=self.headers()
        )
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, _parse(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _parse(exc.read())
        except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
            raise GatewayUnavailable(UNREACHABLE) from exc


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


def reason(body: Any) -> str:
    """The gateway's explanation in an error answer, for a message."""
    if isinstance(body, dict):
        return str(body.get("message") or body.get("reason") or "")
    return str(body or "")[:300]


class Channels:
    """One WebSocket to a kernel; a reader thread sorts its messages by channel.

    ``died`` is set when the gateway reports the kernel restarting or dead (it crashed);
    ``closed`` when the socket ends (the gateway went away, or :meth:`close`); ``too_big``
    when it ended because a frame was over :data:`~workbook.kernels.run_loop.MAX_MESSAGE_BYTES`
    (refused by ``websockets`` before it is buffered, with close code 1009).
    """

    def __init__(self, url: str, headers: dict[str, str], session: Session) -> None:
        self.session = session
        self.queues: dict[str, queue.Queue] = {
            name: queue.Queue() for name in ("shell", "iopub", "control", "stdin")
        }
        self.died = threading.Event()
        self.closed = threading.Event()
        self.too_big = False
        self._stack = contextlib.ExitStack()
        try:
            self._ws = self._stack.enter_context(
                connect(
                    url,
                    additional_headers=headers,
                    open_timeout=_CONNECT_TIMEOUT_S,
                    close_timeout=2,
                    # Check digests carry tensors as text: far past the 1 MiB default, but
                    # bounded like a local kernel's messages.
                    max_size=MAX_MESSAGE_BYTES,
                )
            )
        except InvalidStatus as exc:
            raise SocketRefused(exc.response.status_code) from exc
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise GatewayUnavailable(UNREACHABLE) from exc
        self._reader = threading.Thread(target=self._read, name="gateway-ws-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while True:
                raw = self._ws.recv()
                if isinstance(raw, bytes):
                    continue  # binary frames carry comm buffers (widgets); cells send none
                msg = json.loads(raw)
                channel = msg.pop("channel", "iopub")
                if (
                    channel == "iopub"
                    and msg.get("msg_type") == "status"
                    and msg.get("content", {}).get("execution_state") in ("restarting", "dead")
                ):
                    self.died.set()
                self.queues.setdefault(channel, queue.Queue()).put(msg)
        except ConnectionClosed as exc:
            self.too_big = exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG
        except (OSError, ValueError):
            pass
        finally:
            self.closed.set()

    def send(self, channel: str, msg_type: str, content: dict) -> str:
        """Send a request; return its ``msg_id``.

        Raises:
            SocketClosed: the socket is closed.
        """
        msg = self.session.msg(msg_type, content=content)
        msg["channel"] = channel
        msg["buffers"] = []
        try:
            self._ws.send(json.dumps(msg, default=json_default))
        except (ConnectionClosed, OSError) as exc:
            self.closed.set()
            raise SocketClosed from exc
        return msg["header"]["msg_id"]

    def get(self, channel: str, timeout: float) -> dict | None:
        """The next message of ``channel``, or ``None`` after ``timeout`` seconds."""
        try:
            return self.queues[channel].get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        with contextlib.suppress(Exception):  # noqa: BLE001 - closing a broken socket
            self._stack.close()
        self.closed.set()


class SocketClosed(Exception):
    """The WebSocket closed under us (internal; turned into a student message)."""


class SocketRefused(Exception):
    """The gateway answered the WebSocket handshake with an HTTP error status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status
