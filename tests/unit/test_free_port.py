"""free_port() picks below the kernel's ephemeral range: a kernel-chosen port can be taken
by any outgoing connection of a busy suite before the server meant for it binds it."""

from __future__ import annotations

import socket

from tools.devstack.embedded import _ephemeral_start, free_port


def test_free_ports_are_bindable_and_outside_the_ephemeral_range() -> None:
    start = _ephemeral_start()
    for _ in range(20):
        port = free_port()
        assert 10_000 <= port < start
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # nothing else holds it


def test_a_port_in_use_is_never_handed_out() -> None:
    held = [socket.socket() for _ in range(50)]
    try:
        taken = set()
        for sock in held:
            sock.bind(("127.0.0.1", free_port()))
            sock.listen()
            taken.add(sock.getsockname()[1])
        assert all(free_port() not in taken for _ in range(200))
    finally:
        for sock in held:
            sock.close()
