import assert from "node:assert/strict";
import { test } from "node:test";
import { live } from "../src/live.ts";
import { edgeKey } from "../src/model.ts";

const stats = (uptime, ten, { acked = 0, latency = "0.000" } = {}) => [
  { window: "600", seconds: ten, acked, completeLatency: latency },
  { window: "10800", seconds: uptime, acked, completeLatency: latency },
  { window: "86400", seconds: uptime, acked, completeLatency: latency },
  { window: ":all-time", seconds: uptime, acked, completeLatency: latency },
];

function poll(uptime, emitted, executed, opts = {}) {
  const page = {
    status: "ACTIVE",
    topologyStats: stats(uptime, Math.min(uptime, 600), opts),
    spouts: [{ spoutId: "s", emitted, acked: opts.acked ?? 0, failed: 0, backpressure: "0.000" }],
    bolts: [
      { boltId: "b", emitted: executed, executed, processLatency: "1.000", queueDepth: 0, queueCapacity: 10, backpressure: "0.000" },
    ],
  };
  return {
    all: page,
    ten: page,
    viz: { nodes: [{ id: "s", type: "spout" }, { id: "b", type: "bolt" }], edges: [{ from: "s", to: "b", stream: "default", grouping: "shuffle" }] },
    streams: new Map(),
  };
}

test("the first poll has figures but no rates", () => {
  const l = live(null, poll(10, 100, 90));
  assert.equal(l.dt, null);
  assert.equal(l.rates.get("s"), null);
  assert.deepEqual(l.latency, [null, null]);
});

test("rates per component and edge from successive all-time counters", () => {
  const l = live(poll(10, 100, 90), poll(12, 300, 250));
  assert.equal(l.dt, 2);
  assert.equal(l.rates.get("s"), 100);
  assert.equal(l.rates.get("b"), 80);
  assert.equal(l.edgeRates.get(edgeKey({ from: "s", to: "b", stream: "default" })), 100);
  assert.deepEqual(l.throughput, [100, 0, 0]);
});

test("a restart (uptime going back) starts the rates over", () => {
  const l = live(poll(100, 1000, 900), poll(3, 30, 20));
  assert.equal(l.dt, null);
  assert.equal(l.rates.get("s"), null);
});

test("complete latency over the interval", () => {
  const a = poll(10, 100, 90, { acked: 100, latency: "2.000" });
  const b = poll(12, 300, 250, { acked: 200, latency: "3.000" });
  assert.equal(live(a, b).latency[0], 4);
});
