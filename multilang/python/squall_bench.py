"""The bolt that ``squall_multilang::bench`` measures, and the same work without Squall.

- ``streamparse_run squall_bench.PassBolt``: emits its input's first value (anchored,
  without waiting for task ids) and is acked by pystorm: the protocol's minimum work.
- ``python squall_bench.py baseline N``: calls the same ``process`` N times in a plain
  loop, with ``emit`` and ``ack`` doing what they do minus the pipe, and prints
  ``{"tuples": N, "seconds": S}``.
"""

import json
import sys
import time

from streamparse import Bolt
from streamparse import Tuple


class PassBolt(Bolt):
    def process(self, tup):
        self.emit([tup.values[0]])


def baseline(n):
    bolt = PassBolt.__new__(PassBolt)
    out = []
    # What pystorm does per tuple apart from the pipe: parse the message, build the
    # Tuple, process it, serialise the emit and the ack.
    bolt.emit = lambda values: out.append(json.dumps({"command": "emit", "anchors": ["1"], "tuple": values}))
    start = time.perf_counter()
    for i in range(n):
        msg = json.loads('{"id": "%d", "comp": "source", "stream": "default", "task": 1, "tuple": ["payload"]}' % i)
        tup = Tuple(msg["id"], msg["comp"], msg["stream"], msg["task"], tuple(msg["tuple"]))
        bolt.process(tup)
        out.append(json.dumps({"command": "ack", "id": tup.id}))
        if len(out) > 1024:
            out.clear()
    return time.perf_counter() - start


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "baseline":
        n = int(sys.argv[2])
        print(json.dumps({"tuples": n, "seconds": baseline(n)}))
    else:
        sys.exit("usage: squall_bench.py baseline N")
