"""A hand-written multilang child speaking msgpack (the msgpack library, no pystorm) that
misbehaves on purpose, for the host's bounds on msgpack input. Usage:
``python3 fake_msgpack_child.py MODE [MARKER]``.

Modes (each does the handshake properly first, then answers the first tuple with):

- ``malformed``: the byte 0xc1, which msgpack never uses.
- ``deep``: an emit whose tuple nests 200 lists.
- ``oversized``: a 4 KiB log message.

Like fake_child.py, it misbehaves only while MARKER does not exist, and creates it, so
that the restarted child behaves: it acks every tuple.
"""

import os
import sys

import msgpack


def main():
    mode = sys.argv[1]
    marker = sys.argv[2] if len(sys.argv) > 2 else None
    out = sys.stdout.buffer
    unpacker = msgpack.Unpacker()

    def messages():
        while True:
            data = os.read(0, 65536)
            if not data:
                sys.exit(2)
            unpacker.feed(data)
            yield from unpacker

    def send(obj):
        out.write(msgpack.packb(obj))
        out.flush()

    incoming = messages()
    hello = next(incoming)
    open(os.path.join(hello["pidDir"], str(os.getpid())), "w").close()
    send({"pid": os.getpid()})
    behave = marker is None or os.path.exists(marker)
    for msg in incoming:
        if isinstance(msg, list):
            continue
        if msg.get("stream") == "__heartbeat":
            send({"command": "sync"})
            continue
        if not behave:
            open(marker, "w").close()
            if mode == "malformed":
                out.write(b"\xc1")
                out.flush()
            elif mode == "deep":
                nested = []
                for _ in range(200):
                    nested = [nested]
                send({"command": "emit", "anchors": [msg["id"]], "tuple": [nested]})
            elif mode == "oversized":
                send({"command": "log", "msg": "x" * 4096})
            else:
                sys.exit("unknown mode " + mode)
            behave = True
            continue
        send({"command": "ack", "id": msg["id"]})


if __name__ == "__main__":
    main()
