"""A hand-written multilang child (no library) that misbehaves on purpose, for the
host's robustness tests. Usage: ``python3 fake_child.py MODE [MARKER]``.

Modes (each does the handshake properly first):

- ``invalid-json``: answers the first tuple with text that is not JSON.
- ``unknown-command``: answers the first tuple with ``{"command": "dance"}``.
- ``oversized``: answers the first tuple with a 4 KiB message.
- ``stderr``: writes a line to stderr, then behaves: acks every tuple.
- ``deaf``: stops reading its stdin (while MARKER does not exist), so the host's
  queue to it fills up.
- ``grandchild``: starts ``sleep 1000`` and writes its pid to MARKER, then acks.
- ``spout-hang``: a spout that emits ``[0]`` .. ``[9]`` with ids, then never answers
  ``next`` again, unless MARKER exists (it creates it when it hangs).
- ``crash-after``: appends each input's first value to ``MARKER.seen1`` (``.seen2``
  once MARKER exists); the first child acks its first 5 inputs, reads 3 more without
  acking them, creates MARKER and dies; the next one acks everything.
- ``slow``: sleeps 2 ms per input, then acks it.

Misbehaving bolts do so only while MARKER does not exist, and create it, so that the
restarted child behaves.
"""

import json
import os
import sys
import time


def read_msg():
    lines = []
    while True:
        line = sys.stdin.readline()
        if line == "":
            sys.exit(2)
        line = line.rstrip("\n")
        if line == "end":
            return json.loads("\n".join(lines))
        lines.append(line)


def send_raw(text):
    sys.stdout.write(text + "\nend\n")
    sys.stdout.flush()


def send(obj):
    send_raw(json.dumps(obj))


def handshake():
    hello = read_msg()
    open(os.path.join(hello["pidDir"], str(os.getpid())), "w").close()
    send({"pid": os.getpid()})
    return hello


def main():
    mode = sys.argv[1]
    marker = sys.argv[2] if len(sys.argv) > 2 else None
    handshake()
    if mode == "spout-hang":
        emitted = 0
        while True:
            cmd = read_msg()
            if cmd["command"] == "next":
                if emitted < 10:
                    send({"command": "emit", "id": {"n": emitted}, "tuple": [emitted], "need_task_ids": False})
                    emitted += 1
                elif marker and not os.path.exists(marker):
                    open(marker, "w").close()
                    time.sleep(10**6)
                else:
                    time.sleep(0.001)
            send({"command": "sync"})
    if mode == "deaf" and not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(10**6)
    if mode == "grandchild":
        import subprocess

        sleeper = subprocess.Popen(["sleep", "1000"])
        with open(marker + ".tmp", "w") as f:
            f.write(str(sleeper.pid))
        os.rename(marker + ".tmp", marker)
    if mode == "stderr":
        sys.stderr.write("hello from the child's stderr\n")
        sys.stderr.flush()
    misbehave = mode in ("invalid-json", "unknown-command", "oversized") and not os.path.exists(marker)
    first = mode == "crash-after" and not os.path.exists(marker)
    seen = 0
    while True:
        msg = read_msg()
        if isinstance(msg, list) or msg.get("stream") == "__heartbeat":
            if not isinstance(msg, list):
                send({"command": "sync"})
            continue
        if mode == "crash-after":
            seen += 1
            with open(marker + (".seen1" if first else ".seen2"), "a") as f:
                f.write("%d\n" % msg["tuple"][0])
            if first and seen == 8:
                open(marker, "w").close()
                os._exit(1)
            if first and seen > 5:
                continue
        if mode == "slow":
            time.sleep(0.002)
        if misbehave:
            if marker:
                open(marker, "w").close()
            if mode == "invalid-json":
                send_raw("this is not json")
            elif mode == "unknown-command":
                send({"command": "dance"})
            elif mode == "oversized":
                send({"command": "log", "msg": "x" * 4096})
            time.sleep(10**6)
        send({"command": "ack", "id": msg["id"]})


if __name__ == "__main__":
    main()
