"""A WebSocket client on a bare socket, for clients no library would be: ones that never read,
or that announce frames they never send. Every call has a timeout."""

from __future__ import annotations

import base64
import os
import socket
import struct
import urllib.parse

TIMEOUT = 10.0
OPCODE_TEXT = 0x1
OPCODE_CLOSE = 0x8


def open_raw_websocket(ws_url: str, site: str, receive_buffer: int | None = None) -> socket.socket:
    """Complete the opening handshake for ``site`` and return the socket; fail unless 101.

    ``receive_buffer`` shrinks the socket's receive buffer (set before connecting, so the
    kernel advertises a small window) for a client that is meant to fall behind.
    """
    address = urllib.parse.urlsplit(ws_url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /?site={urllib.parse.quote(site)} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise AssertionError(f"handshake cut short: {head!r}")
        head += chunk
        if len(head) > 16_384:
            raise AssertionError("handshake answer too long")
    status_line = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status_line + b" ":
        sock.close()
        raise AssertionError(f"handshake refused: {status_line!r}")
    return sock


def client_frame_header(opcode: int, length: int) -> bytes:
    """A final, masked client frame header announcing ``length`` payload bytes (mask zero)."""
    first = 0x80 | opcode
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    return header + b"\x00\x00\x00\x00"


def _receive_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("connection closed mid-frame")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """The next server frame (unmasked): its opcode and payload."""
    first, second = _receive_exactly(sock, 2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _receive_exactly(sock, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _receive_exactly(sock, 8))
    return first & 0x0F, _receive_exactly(sock, length)


def close_code(payload: bytes) -> int:
    """The status code of a close frame's payload (1005 when it has none)."""
    return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else 1005
