"""The talk's pipeline as a streamparse topology class: the edit feed, the talk's
jsonParser and RedisBolt. ``squall import streamparse`` turns it into a Topology manifest:

    squall import streamparse examples/wikipedia-edits/python/topologies/wikipedia.py \
        -o examples/wikipedia-edits/topology-streamparse.yaml
"""

from streamparse import Grouping, Topology

from bolts import RedisBolt, jsonParser
from spouts import EditStream


class WikipediaEdits(Topology):
    config = {
        "topology.acker.executors": 1,
        "topology.message.timeout.secs": 30,
        # Python does a few thousand tuples a second per process: keep the window modest.
        "topology.max.spout.pending": 2000,
    }

    edits = EditStream.spec(config={"url": "http://127.0.0.1:9001/v2/stream/recentchange"})
    parser = jsonParser.spec(inputs={edits: Grouping.SHUFFLE}, par=2)
    counts = RedisBolt.spec(
        inputs={parser: Grouping.SHUFFLE},
        par=2,
        config={"url": "redis://127.0.0.1:6379", "prefix": ""},
    )
