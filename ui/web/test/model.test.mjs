import assert from "node:assert/strict";
import { test } from "node:test";
import { backpressureRoots, capacityColour, compact, History, intervalMean, lagRows, perSecond } from "../src/model.ts";

const bolt = (id, fill, backpressure = 0) => ({ id, kind: "bolt", queueDepth: fill * 100, queueCapacity: 100, backpressure });
const spout = (id, backpressure = 0) => ({ id, kind: "spout", queueDepth: 0, queueCapacity: 0, backpressure });
const chain = (...ids) => ids.slice(1).map((to, i) => ({ from: ids[i], to }));

test("rates come from counter differences, none after a restart", () => {
  assert.equal(perSecond(100, 400, 3), 100);
  assert.equal(perSecond(100, 100, 0), null);
  assert.equal(perSecond(500, 100, 3), null);
});

test("interval means need the window to start where it did", () => {
  // 10 events at 2 ms, then 10 more at 4 ms: a mean of 3 ms over 20.
  assert.equal(intervalMean({ mean: 2, count: 10, base: 0 }, { mean: 3, count: 20, base: 0 }), 4);
  assert.equal(intervalMean({ mean: 2, count: 10, base: 0 }, { mean: 3, count: 20, base: 10 }), null);
  assert.equal(intervalMean({ mean: 2, count: 10, base: 0 }, { mean: 2, count: 10, base: 0 }), null);
});

test("the root is the full queue whose upstream waits, not the victims above it", () => {
  // s -> a -> b -> c: c is slow, b's queue filled, a waits on b and fills, s waits on a.
  const flows = [spout("s", 0.5), bolt("a", 0.95, 0.4), bolt("b", 0.9, 0.6), bolt("c", 0.99, 0)];
  assert.deepEqual([...backpressureRoots(flows, chain("s", "a", "b", "c"))], ["c"]);
});

test("no root without waiting upstream, nor in a spout, nor with an unknown queue", () => {
  assert.equal(backpressureRoots([spout("s"), bolt("a", 1)], chain("s", "a")).size, 0);
  const unknown = { id: "a", kind: "bolt", queueDepth: 5, queueCapacity: 0, backpressure: 0 };
  assert.equal(backpressureRoots([spout("s", 0.5), unknown], chain("s", "a")).size, 0);
});

test("two independent bottlenecks are both roots", () => {
  const flows = [spout("s", 0.3), bolt("a", 0.9), bolt("b", 0.85)];
  const edges = [...chain("s", "a"), ...chain("s", "b")];
  assert.deepEqual([...backpressureRoots(flows, edges)].sort(), ["a", "b"]);
});

test("a full bolt that waits on a free downstream is still the root", () => {
  const flows = [spout("s", 0.5), bolt("a", 0.9, 0.2), bolt("b", 0.1)];
  assert.deepEqual([...backpressureRoots(flows, chain("s", "a", "b"))], ["a"]);
});

test("colours and compact numbers", () => {
  assert.equal(capacityColour(0), "hsl(120, 70%, 88%)");
  assert.equal(capacityColour(2), "hsl(0, 70%, 70%)");
  assert.match(capacityColour(null), /^hsl\(210/);
  assert.deepEqual([0, 4.25, 12, 1234, 56789, 2.5e6].map(compact), ["0", "4.3", "12", "1.23k", "56.8k", "2.50M"]);
});

test("the history keeps only its last seconds", () => {
  const h = new History(["a", "b"], 10);
  for (let t = 0; t <= 30; t += 5) h.push(t, [t, null]);
  assert.deepEqual(h.x, [20, 25, 30]);
  assert.deepEqual(h.ys, [[20, 25, 30], [null, null, null]]);
});

test("a full acker that everyone waits on is the root, the bolts its victims", () => {
  const flows = [spout("s", 0.05), bolt("a", 0, 0.4), bolt("b", 0.01, 0.4), bolt("__acker", 0.99, 0)];
  assert.deepEqual([...backpressureRoots(flows, chain("s", "a", "b"))], ["__acker"]);
});

test("the spout lag becomes rows by spout, topic and partition in numeric order", () => {
  const part = (c, h, l) => ({ consumerCommittedOffset: c, logHeadOffset: h, lag: l });
  const lag = {
    z: { spoutId: "z", spoutType: "KAFKA", spoutLagResult: { t: { 0: part(1, 2, 1) } } },
    a: {
      spoutId: "a",
      spoutType: "KAFKA",
      spoutLagResult: { u: { 10: part(5, 9, 4), 2: part(null, 7, 7) }, t: { 1: part(3, 3, 0) } },
    },
  };
  assert.deepEqual(
    lagRows(lag).map((r) => [r.spout, r.topic, r.partition, r.committed, r.head, r.lag]),
    [
      ["a", "t", 1, 3, 3, 0],
      ["a", "u", 2, null, 7, 7],
      ["a", "u", 10, 5, 9, 4],
      ["z", "t", 0, 1, 2, 1],
    ],
  );
  assert.deepEqual(lagRows({}), []);
});
