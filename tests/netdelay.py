"""The delayer for a test host's link where the kernel has no netem: `python netdelay.py MS`, run inside the
host's network namespace, lets every packet that iptables queues to NFQUEUE `QUEUE` go after MS
milliseconds (netfilter's nfnetlink_queue protocol). It prints `ready` once bound, lets what it holds go
on SIGTERM, and uses only the standard library.
"""

import collections
import contextlib
import errno
import os
import select
import signal
import socket
import struct
import sys
import time

QUEUE = 0
"""The NFQUEUE number the host's iptables rule sends its outgoing packets to."""
NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2


def _nl_attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _nl_message(kind: int, flags: int, seq: int, *attrs: bytes) -> bytes:
    body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack("!H", QUEUE) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, seq, 0) + body


def _nl_packets(data: bytes):
    """The ids of the queued packets in a netlink read; raises on an error answer."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _, _, _ = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            break
        if kind == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", data, offset + 16)
            if code:
                raise OSError(-code, os.strerror(-code))
        elif kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            at = offset + 20
            while at + 4 <= offset + length:
                size, attr = struct.unpack_from("=HH", data, at)
                if size < 4:
                    break
                if attr & 0x3FFF == NFQA_PACKET_HDR:
                    yield struct.unpack_from("!I", data, at + 4)[0]
                at += (size + 3) & ~3
        offset += (length + 3) & ~3


def delay(ms: int) -> None:
    """Bind the queue, then hold each packet `ms` ms before accepting it, until SIGTERM."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
    sock.bind((0, 0))
    setup = [
        _nl_attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)),
        _nl_attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
        _nl_attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 65536)),
        _nl_attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))
        + _nl_attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
    ]
    for seq, attrs in enumerate(setup, start=1):
        sock.send(_nl_message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, seq, attrs))
        list(_nl_packets(sock.recv(65536)))
    pending: collections.deque[tuple[float, int]] = collections.deque()

    def accept(packet: int) -> None:
        verdict = _nl_attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet))
        sock.send(_nl_message(NFQNL_MSG_VERDICT, NLM_F_REQUEST, 0, verdict))

    def stop(*_):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    try:
        while True:
            wait = max(0.0, pending[0][0] - time.monotonic()) if pending else None
            if select.select([sock], [], [], wait)[0]:
                try:
                    data = sock.recv(1 << 20)
                except OSError as error:
                    if error.errno == errno.ENOBUFS:
                        continue
                    raise
                now = time.monotonic()
                pending.extend((now + ms / 1000, packet) for packet in _nl_packets(data))
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                accept(pending.popleft()[1])
    finally:
        while pending:  # let what is held go, not drop it
            with contextlib.suppress(OSError):
                accept(pending.popleft()[1])


if __name__ == "__main__":
    delay(int(sys.argv[1]))
