"""The talk's two streamparse bolts, ported to Python 3 and to pystorm's API, for
``topology-python.yaml``. They run unmodified under Storm or Squall as
``streamparse_run bolts.jsonParser`` and ``streamparse_run bolts.RedisBolt``.

Changes from the talk, each for a reason:

- ``emit_many`` is gone from streamparse, so jsonParser emits its keys one by one.
- A malformed event goes to the ``errors`` stream (``[event, error]``) and is acked,
  instead of crashing the process (a crash would replay it forever).
- RedisBolt reads ``url`` and ``prefix`` from its config instead of a fixed host, splits
  keys at the first ``_`` only, acks a tuple only after Redis took its writes, and fails
  it (so the spout replays it) when Redis is unreachable. redis-py reconnects by itself
  on the next command. ``zincrby``/``zadd`` use redis-py 3+'s argument order.
"""

import json
import time

import redis
from streamparse import Bolt, Stream


class jsonParser(Bolt):  # noqa: N801 -- the talk's name, kept so the port is recognisable
    """An edit event (JSON text) → its counter keys: ``isanon_<True|False>``,
    ``anon_anon``/``anon_loggedin``, ``bot_bot``/``bot_human``, ``action_<action>``
    and ``country_<name>`` when ``geo_ip`` is present."""

    # Read by streamparse's topology DSL (topologies/wikipedia.py); unused at run time.
    outputs = [Stream(fields=["word"]), Stream(fields=["event", "error"], name="errors")]

    def process(self, tup):
        event = tup.values[0]
        try:
            json_object = json.loads(str(event))
            keys = ["isanon_" + str(json_object["is_anon"])]
            keys.append("anon_anon" if json_object.get("is_anon") else "anon_loggedin")
            keys.append("bot_bot" if json_object.get("is_bot") else "bot_human")
            keys.append("action_" + json_object["action"])
            if json_object.get("geo_ip"):
                keys.append("country_" + json_object["geo_ip"]["country_name"])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            self.report_metric("malformed", 1)
            self.emit([str(event), "%s: %s" % (type(e).__name__, e)], stream="errors")
            return
        for key in keys:
            self.emit([key])


class RedisBolt(Bolt):
    """Counts ``category_value`` keys in Redis sorted sets, as the talk did:
    ``action_<a>`` → ``ZINCRBY actions 1 <a>`` and ``ZADD action <unix time> <a>``;
    any other ``category_value`` → ``ZINCRBY category 1 value``. Every key is prefixed
    with the config's ``prefix``."""

    auto_ack = False

    def initialize(self, conf, ctx):
        self.redis = redis.Redis.from_url(
            conf.get("url", "redis://127.0.0.1:6379"), socket_timeout=2, socket_connect_timeout=2
        )
        self.prefix = conf.get("prefix", "")

    def process(self, tup):
        (key,) = tup.values
        if not isinstance(key, str) or "_" not in key:
            # Cannot ever succeed: report it and do not replay it.
            self.logger.warning("malformed key %r", key)
            self.report_metric("malformed_keys", 1)
            self.ack(tup)
            return
        category, word = key.split("_", 1)
        pipe = self.redis.pipeline(transaction=False)
        if category == "action":
            pipe.zincrby(self.prefix + "actions", 1, word)
            pipe.zadd(self.prefix + "action", {word: int(time.time())})
        else:
            pipe.zincrby(self.prefix + category, 1, word)
        try:
            pipe.execute()
        except redis.RedisError as e:
            self.logger.warning("redis write failed, failing the tuple: %s", e)
            self.report_metric("redis_errors", 1)
            self.fail(tup)
            return
        self.ack(tup)
