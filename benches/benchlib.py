"""Helpers the Python benchmarks share: a free port, one HTTP/1.1 GET over a new connection, and
waiting for a server to answer."""

import os
import socket
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, headers=(), timeout=None):
    """The whole raw response to `GET path` on a new connection (`Connection: close`); a
    TimeoutError if it takes longer than `timeout` seconds in all."""
    started = time.perf_counter()
    head = "".join(f"{h}\r\n" for h in headers)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{head}\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
            if timeout is not None and time.perf_counter() - started > timeout:
                raise TimeoutError
    return data


def wait_up(port, proc, what, path="/feed.rss"):
    """Waits until `path` answers 200; exits if `proc` ends first or 10 s pass."""
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit(f"{what} exited at start")
        try:
            if get(port, path, timeout=1).startswith(b"HTTP/1.1 200"):
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"{what} did not come up")
