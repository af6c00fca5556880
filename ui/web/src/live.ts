// Live figures from two successive polls of a topology: rates from the all-time
// counters (exact), interval latencies from the 10-minute window's means (see
// intervalMean), back-pressure roots from the queues now and the 10-minute waits.

import type { TopologyPage, Visualization } from "./api";
import { backpressureRoots, edgeKey, intervalMean, perSecond, type Flow, type MeanSnap } from "./model";

/** What one poll of a topology brought. */
export interface Poll {
  /** `window=:all-time`: cumulative counters. */
  all: TopologyPage;
  /** `window=600`: the last 10 minutes. */
  ten: TopologyPage;
  viz: Visualization;
  /** Emitted per output stream (all time) of components with several streams. */
  streams: Map<string, Map<string, number>>;
}

export interface Live {
  /** Seconds between the two polls' samples; null on the first poll or after a restart. */
  dt: number | null;
  /** Tuples per second: emitted by each spout, executed by each bolt. */
  rates: Map<string, number | null>;
  /** Tuples per second on each edge (by edgeKey). */
  edgeRates: Map<string, number | null>;
  /** Spouts' emitted, acked and failed per second. */
  throughput: [number | null, number | null, number | null];
  /** Complete latency and the bolts' mean process latency, ms, over the interval. */
  latency: [number | null, number | null];
  roots: Set<string>;
  flows: Map<string, Flow>;
}

function windowSeconds(p: TopologyPage, w: string): number {
  return p.topologyStats.find((s) => s.window === w)?.seconds ?? 0;
}

/** The sample's uptime, seconds (the all-time window spans it exactly). */
export function uptime(p: TopologyPage): number {
  return windowSeconds(p, ":all-time");
}

function counters(p: TopologyPage): Map<string, { emitted: number; executed: number; acked: number; failed: number }> {
  const m = new Map<string, { emitted: number; executed: number; acked: number; failed: number }>();
  for (const s of p.spouts) m.set(s.spoutId, { emitted: s.emitted, executed: 0, acked: s.acked, failed: s.failed });
  for (const b of p.bolts) m.set(b.boltId, { emitted: b.emitted, executed: b.executed, acked: b.acked, failed: b.failed });
  return m;
}

function completeSnaps(p: Poll): [MeanSnap, MeanSnap] {
  const ten = p.ten.topologyStats.find((s) => s.window === "600");
  const all = p.all.topologyStats.find((s) => s.window === ":all-time");
  return [
    { mean: Number(ten?.completeLatency ?? 0), count: ten?.acked ?? 0, base: uptime(p.ten) - (ten?.seconds ?? 0) },
    { mean: Number(all?.completeLatency ?? 0), count: all?.acked ?? 0, base: 0 },
  ];
}

function processSnap(page: TopologyPage, base: number): MeanSnap {
  let count = 0;
  let sum = 0;
  for (const b of page.bolts) {
    count += b.executed;
    sum += Number(b.processLatency) * b.executed;
  }
  return { mean: count > 0 ? sum / count : 0, count, base };
}

function processSnaps(p: Poll): [MeanSnap, MeanSnap] {
  return [processSnap(p.ten, uptime(p.ten) - windowSeconds(p.ten, "600")), processSnap(p.all, 0)];
}

/** The interval mean from the 10-minute window when its start stayed put, else all time. */
function interval(prev: [MeanSnap, MeanSnap], cur: [MeanSnap, MeanSnap]): number | null {
  return intervalMean(prev[0], cur[0]) ?? intervalMean(prev[1], cur[1]);
}

function sum(p: TopologyPage, f: (s: TopologyPage["spouts"][number]) => number): number {
  return p.spouts.reduce((n, s) => n + f(s), 0);
}

function flows(p: Poll): Map<string, Flow> {
  const m = new Map<string, Flow>();
  for (const s of p.ten.spouts) {
    m.set(s.spoutId, { id: s.spoutId, kind: "spout", queueDepth: 0, queueCapacity: 0, backpressure: Number(s.backpressure) });
  }
  // Queue depths are gauges: the newest answer's.
  const queues = new Map(p.all.bolts.map((b) => [b.boltId, b]));
  for (const b of p.ten.bolts) {
    const q = queues.get(b.boltId) ?? b;
    m.set(b.boltId, {
      id: b.boltId,
      kind: "bolt",
      queueDepth: q.queueDepth,
      queueCapacity: q.queueCapacity,
      backpressure: Number(b.backpressure),
    });
  }
  return m;
}

function streamCounter(p: Poll, from: string, stream: string, single: boolean): number | undefined {
  const perStream = p.streams.get(from)?.get(stream);
  if (perStream !== undefined) return perStream;
  if (!single) return undefined;
  return counters(p.all).get(from)?.emitted;
}

export function live(prev: Poll | null, cur: Poll): Live {
  const restarted = prev !== null && uptime(cur.all) < uptime(prev.all);
  const before = restarted ? null : prev;
  const dt = before ? uptime(cur.all) - uptime(before.all) : null;
  const rate = (a: number | undefined, b: number | undefined) =>
    dt === null || a === undefined || b === undefined ? null : perSecond(a, b, dt);
  const now = counters(cur.all);
  const then = before ? counters(before.all) : new Map();
  const spouts = new Set(cur.all.spouts.map((s) => s.spoutId));
  const rates = new Map<string, number | null>();
  for (const [id, c] of now) {
    const field = spouts.has(id) ? "emitted" : "executed";
    rates.set(id, rate(then.get(id)?.[field], c[field]));
  }
  const streamsOf = new Map<string, Set<string>>();
  for (const e of cur.viz.edges) streamsOf.set(e.from, (streamsOf.get(e.from) ?? new Set()).add(e.stream));
  const edgeRates = new Map<string, number | null>();
  for (const e of cur.viz.edges) {
    const single = (streamsOf.get(e.from)?.size ?? 0) <= 1;
    const b = before ? streamCounter(before, e.from, e.stream, single) : undefined;
    edgeRates.set(edgeKey(e), rate(b, streamCounter(cur, e.from, e.stream, single)));
  }
  const f = flows(cur);
  return {
    dt,
    rates,
    edgeRates,
    throughput: [
      rate(before ? sum(before.all, (s) => s.emitted) : undefined, sum(cur.all, (s) => s.emitted)),
      rate(before ? sum(before.all, (s) => s.acked) : undefined, sum(cur.all, (s) => s.acked)),
      rate(before ? sum(before.all, (s) => s.failed) : undefined, sum(cur.all, (s) => s.failed)),
    ],
    latency: before
      ? [interval(completeSnaps(before), completeSnaps(cur)), interval(processSnaps(before), processSnaps(cur))]
      : [null, null],
    roots: backpressureRoots([...f.values()], cur.viz.edges),
    flows: f,
  };
}
