"""The edit feed as a streamparse spout, for the streamparse form of the talk's topology
(``topologies/wikipedia.py``). It reads Server-Sent Events in Wikimedia's EventStreams
framing (``id:`` and ``data:`` lines), as served by ``squall feed serve --sse``, using the
standard library only.

Each edit is emitted with its event id as the message id and kept until it is acked; a
failed edit is emitted again. A reader thread fills a bounded queue, so ``next_tuple``
never waits on the network for long; after a disconnect it resumes with
``Last-Event-ID``.
"""

import collections
import queue
import threading
import time
import urllib.request

from streamparse import Spout


class EditStream(Spout):
    """``[event]``: one JSON edit per tuple, from the SSE feed at the config's ``url``."""

    outputs = ["event"]

    def initialize(self, conf, ctx):
        self.url = conf.get("url", "http://127.0.0.1:9001/v2/stream/recentchange")
        self.edits = queue.Queue(maxsize=int(conf.get("buffer", 10000)))
        self.pending = {}
        self.replays = collections.deque()
        self.disconnects = 0
        self.reported = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        last_id = None
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                request = urllib.request.Request(self.url, headers=headers)
                with urllib.request.urlopen(request, timeout=60) as stream:
                    for event_id, data in _events(stream):
                        self.edits.put((event_id, data))
                        last_id = event_id
            except (OSError, ValueError):
                pass
            # Counted here, reported from the main thread: pystorm's writes are not
            # meant to be shared with other threads.
            self.disconnects += 1
            time.sleep(1)

    def next_tuple(self):
        if self.disconnects > self.reported:
            self.report_metric("disconnects", self.disconnects - self.reported)
            self.reported = self.disconnects
        if self.replays:
            event_id = self.replays.popleft()
            self.emit([self.pending[event_id]], tup_id=event_id)
            return
        try:
            event_id, data = self.edits.get(timeout=0.01)
        except queue.Empty:
            return
        self.pending[event_id] = data
        self.emit([data], tup_id=event_id)

    def ack(self, tup_id):
        self.pending.pop(tup_id, None)

    def fail(self, tup_id):
        if tup_id in self.pending:
            self.replays.append(tup_id)


def _events(stream):
    """(id, data) of each event of an SSE byte stream; comments and other fields skipped."""
    event_id, data = None, []
    for raw in stream:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data and event_id is not None:
                yield event_id, "\n".join(data)
            event_id, data = None, []
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
