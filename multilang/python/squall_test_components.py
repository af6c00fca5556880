"""Plain streamparse/pystorm components that squall-multilang's integration tests run
unmodified, the way Storm runs them: ``streamparse_run squall_test_components.<Class>``.

Test knobs come from the component's config (the handshake's ``conf``):

- ``test.count``: how many numbers NumberSpout emits.
- ``test.out_dir``: where RecordingBolt writes what it received, one file per task.
- ``test.fail_every``: FlakyBolt fails each multiple of this once per process.
- ``test.delay_ms``: FlakyBolt sleeps this long per tuple.
- ``test.hang_at`` / ``test.marker``: FlakyBolt sleeps forever on this number, once
  (the marker file records that it did).
- ``test.raise_at`` / ``test.marker``: RaisingBolt raises on this number, once.

None of them names a serializer: ``streamparse_run --serializer msgpack`` (which the
host passes for ``serializer: msgpack``) switches them over unmodified.
"""

import json
import os
import time

from streamparse import BatchingBolt, Bolt, ReliableSpout, Spout


class NumberSpout(ReliableSpout):
    """Emits ``[n]`` for n in 0..count with the id ``"n<n>"``; a failed tuple is
    re-emitted by pystorm's ReliableSpout."""

    # Replays are the point of the tests, so never give up on a tuple.
    max_fails = 1000

    def initialize(self, conf, ctx):
        self.count = int(conf.get("test.count", 100))
        self.next_n = 0

    def next_tuple(self):
        if self.next_n < self.count:
            n = self.next_n
            self.next_n += 1
            self.emit([n], tup_id="n%d" % n)
        else:
            # Storm's rule: sleep a little when there is nothing to emit.
            time.sleep(0.001)


class FlakyBolt(Bolt):
    """Passes ``[n]`` on, anchored; fails some inputs once, can be slow, can hang."""

    auto_ack = False

    def initialize(self, conf, ctx):
        self.fail_every = int(conf.get("test.fail_every", 0))
        self.delay = float(conf.get("test.delay_ms", 0)) / 1000.0
        self.hang_at = conf.get("test.hang_at")
        self.marker = conf.get("test.marker")
        self.failed = set()

    def process(self, tup):
        # Named access: pystorm builds namedtuples from the handshake's
        # source->stream->fields, so this proves the host sends it.
        n = tup.values.n
        if self.hang_at is not None and n == self.hang_at and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            time.sleep(10**6)
        if self.fail_every and n % self.fail_every == 0 and n not in self.failed:
            self.failed.add(n)
            self.report_metric("failed_on_purpose", 1)
            self.fail(tup)
            return
        if self.delay:
            time.sleep(self.delay)
        self.emit([n])
        self.ack(tup)


class RecordingBolt(Bolt):
    """Appends every input as a JSON line to ``<test.out_dir>/<component>-<task>.jsonl``."""

    def initialize(self, conf, ctx):
        out_dir = conf["test.out_dir"]
        path = os.path.join(out_dir, "%s-%s.jsonl" % (self.component_name, self.task_id))
        self.out = open(path, "a", buffering=1)

    def process(self, tup):
        self.out.write(
            json.dumps(
                {
                    "source": tup.component,
                    "stream": tup.stream,
                    "values": list(tup.values),
                    "task": self.task_id,
                }
            )
            + "\n"
        )


class BatchCounter(BatchingBolt):
    """streamparse's BatchingBolt driven by tick tuples: counts numbers by ``n % 10``
    and emits ``[key, count]`` per batch, anchored to the whole batch."""

    ticks_between_batches = 1

    def group_key(self, tup):
        return tup.values[0] % 10

    def process_batch(self, key, tups):
        self.emit([key, len(tups)])


class RouterBolt(Bolt):
    """Emits ``[n]`` on the named stream ``tagged`` asking for the target task ids,
    then ``[n, task]`` directly to each of those tasks on the direct stream ``direct``."""

    def process(self, tup):
        n = tup.values[0]
        tasks = self.emit([n], stream="tagged", need_task_ids=True)
        for task in tasks:
            self.emit([n, task], stream="direct", direct_task=task)


# Every kind of value a tuple can carry: the dict has a key that is not text, and bytes
# have no JSON form (the msgpack serializer carries them as bytes).
TYPES_VALUES = [None, True, -3, 2.5, "\u00e9", [1, [2]], {"k": 1, 2: "two"}, b"\x00\xff"]


class TypesSpout(Spout):
    """Emits ``TYPES_VALUES`` once, with an id."""

    def initialize(self, conf, ctx):
        self.sent = False

    def next_tuple(self):
        if not self.sent:
            self.sent = True
            self.emit(list(TYPES_VALUES), tup_id="types")
        else:
            time.sleep(0.001)


class TypesBolt(Bolt):
    """Emits ``[type names, repr]`` of its input's values, as Python received them."""

    def process(self, tup):
        values = list(tup.values)
        self.emit([",".join(type(v).__name__ for v in values), repr(values)])


class RaisingBolt(Bolt):
    """Passes ``[n]`` on, and raises (once, while ``test.marker`` does not exist) on
    ``test.raise_at``: pystorm reports the exception as an ``error`` and exits."""

    def initialize(self, conf, ctx):
        self.raise_at = conf.get("test.raise_at")
        self.marker = conf.get("test.marker")

    def process(self, tup):
        n = tup.values[0]
        if n == self.raise_at and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            raise ValueError("raised on purpose at %d" % n)
        self.emit([n])
