"""The forwarder of a test fleet's shared address: `python forwarder.py ADDRESS PORT...` relays every
connection to ADDRESS:PORT to 127.0.0.1:PORT (the same port, this machine's own service, nowhere else),
prints `ready` once it listens, and ends when its parent is gone. It uses only the standard library.
"""

import contextlib
import os
import signal
import socket
import sys
import threading
import time

FORWARD_TARGET = "127.0.0.1"


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _relay(client: socket.socket, port: int) -> None:
    try:
        server = socket.create_connection((FORWARD_TARGET, port), timeout=10)
    except OSError as error:
        print(f"forward :{port}: cannot reach {FORWARD_TARGET}:{port}: {error}", file=sys.stderr, flush=True)
        client.close()
        return
    server.settimeout(None)
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_pump, args=(server, client), daemon=True)
    back.start()
    _pump(client, server)
    back.join()
    client.close()
    server.close()


def forward(address: str, ports: list[int]) -> None:
    listeners = []
    for port in ports:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, port))
        listener.listen(128)
        listeners.append((listener, port))

    def serve(listener: socket.socket, port: int) -> None:
        while True:
            client, _ = listener.accept()
            threading.Thread(target=_relay, args=(client, port), daemon=True).start()

    for listener, port in listeners:
        threading.Thread(target=serve, args=(listener, port), daemon=True).start()
    parent = os.getppid()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print("ready", flush=True)
    while os.getppid() == parent:  # the fleet's process died without its teardown: go too
        time.sleep(1)


if __name__ == "__main__":
    forward(sys.argv[1], [int(p) for p in sys.argv[2:]])
