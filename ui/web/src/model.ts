// What the pages work out from successive answers: live rates, interval latencies, the
// back-pressure root cause, colours. Pure functions, tested with `node build.mjs --tests`.

/** One row of the Kafka spouts' lag table. */
export interface LagRow {
  spout: string;
  topic: string;
  partition: number;
  committed: number | null;
  head: number;
  lag: number;
}

/** Storm's spout lag as table rows: by spout, topic, then partition in numeric order. */
export function lagRows(
  lag: Record<string, { spoutLagResult: Record<string, Record<string, { consumerCommittedOffset: number | null; logHeadOffset: number; lag: number }>> }>,
): LagRow[] {
  const rows: LagRow[] = [];
  for (const [spout, s] of Object.entries(lag)) {
    for (const [topic, parts] of Object.entries(s.spoutLagResult ?? {})) {
      for (const [p, v] of Object.entries(parts)) {
        rows.push({ spout, topic, partition: Number(p), committed: v.consumerCommittedOffset ?? null, head: v.logHeadOffset, lag: v.lag });
      }
    }
  }
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return rows.sort((a, b) => cmp(a.spout, b.spout) || cmp(a.topic, b.topic) || a.partition - b.partition);
}

/** Seconds of history the charts keep. */
export const HISTORY_SECONDS = 600;

/** An edge's key in maps: its ends and stream. */
export function edgeKey(e: { from: string; to: string; stream: string }): string {
  return `${e.from}\u0000${e.to}\u0000${e.stream}`;
}

/** Per-second rate of a cumulative counter; null with no new sample or after a restart. */
export function perSecond(prev: number, cur: number, dt: number): number | null {
  if (!(dt > 0) || cur < prev) return null;
  return (cur - prev) / dt;
}

/**
 * A mean over a window as the API gives it: `mean` of `count` events since `base`
 * (the window's start on the topology's uptime axis, seconds).
 */
export interface MeanSnap {
  mean: number;
  count: number;
  base: number;
}

/**
 * The mean of the events between two answers about the same window, from the
 * difference of their sums; null when the window moved its start in between (the two
 * sums then cover different events) or nothing happened.
 */
export function intervalMean(prev: MeanSnap, cur: MeanSnap): number | null {
  if (Math.abs(prev.base - cur.base) > 1e-3) return null;
  const n = cur.count - prev.count;
  if (n <= 0) return null;
  const m = (cur.mean * cur.count - prev.mean * prev.count) / n;
  // Three-decimal means can make a near-zero difference slightly negative.
  return Math.max(0, m);
}

/** Storm names its system components `__acker`, `__system`…; Squall too. */
export function isSystem(id: string): boolean {
  return id.startsWith("__");
}

/** A component as the back-pressure analysis sees it. */
export interface Flow {
  id: string;
  kind: "spout" | "bolt";
  queueDepth: number;
  queueCapacity: number;
  /** Share of the time its executors waited on full queues downstream. */
  backpressure: number;
}

export interface Thresholds {
  /** Queue fill from which a queue counts as full. */
  full: number;
  /** Share of time waiting from which a component counts as held back. */
  waiting: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = { full: 0.8, waiting: 0.01 };

export function queueFill(f: Pick<Flow, "queueDepth" | "queueCapacity">): number | null {
  return f.queueCapacity > 0 ? f.queueDepth / f.queueCapacity : null;
}

/**
 * The components at the root of back pressure: a bolt whose input queue is full while
 * an upstream waits on it, and which is not itself waiting on a full queue further
 * down (then it is a victim, and the root is downstream). System components (the
 * acker) have no edges in the graph but hear from every other component, so they count
 * as downstream of all of them.
 */
export function backpressureRoots(
  flows: Flow[],
  edges: ReadonlyArray<{ from: string; to: string }>,
  t: Thresholds = DEFAULT_THRESHOLDS,
): Set<string> {
  const byId = new Map(flows.map((f) => [f.id, f]));
  const full = (f: Flow | undefined) => !!f && (queueFill(f) ?? 0) >= t.full;
  const waiting = (f: Flow | undefined) => !!f && f.backpressure >= t.waiting;
  const ups = new Map<string, string[]>();
  const downs = new Map<string, string[]>();
  const link = (from: string, to: string) => {
    ups.set(to, [...(ups.get(to) ?? []), from]);
    downs.set(from, [...(downs.get(from) ?? []), to]);
  };
  for (const e of edges) if (e.from !== e.to) link(e.from, e.to);
  for (const sys of flows.filter((f) => isSystem(f.id))) {
    for (const f of flows) if (!isSystem(f.id)) link(f.id, sys.id);
  }
  const roots = new Set<string>();
  for (const f of flows) {
    if (f.kind !== "bolt" || !full(f)) continue;
    if (!(ups.get(f.id) ?? []).some((u) => waiting(byId.get(u)))) continue;
    const victim = waiting(f) && (downs.get(f.id) ?? []).some((d) => full(byId.get(d)));
    if (!victim) roots.add(f.id);
  }
  return roots;
}

/** Node fill by capacity: green when idle through amber to red when saturated. */
export function capacityColour(capacity: number | null): string {
  if (capacity === null || !Number.isFinite(capacity)) return "hsl(210, 15%, 92%)";
  const c = Math.min(Math.max(capacity, 0), 1);
  return `hsl(${Math.round(120 * (1 - c))}, 70%, ${Math.round(88 - 18 * c)}%)`;
}

/** `1234.5` -> `1.23k`: compact rates for the graph's labels. */
export function compact(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(a >= 1e10 ? 1 : 2) + "G";
  if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 1 : 2) + "M";
  if (a >= 1e3) return (n / 1e3).toFixed(a >= 1e4 ? 1 : 2) + "k";
  if (a >= 10 || n === 0) return n.toFixed(0);
  return n.toFixed(1);
}

/** Time series kept client-side: one x column and named y columns, trimmed by age. */
export class History {
  readonly x: number[] = [];
  readonly ys: (number | null)[][];

  constructor(
    readonly names: string[],
    readonly keep: number = HISTORY_SECONDS,
  ) {
    this.ys = names.map(() => []);
  }

  push(t: number, values: (number | null)[]): void {
    this.x.push(t);
    this.ys.forEach((col, i) => col.push(values[i] ?? null));
    let drop = 0;
    while (drop < this.x.length && this.x[drop] < t - this.keep) drop++;
    if (drop > 0) {
      this.x.splice(0, drop);
      this.ys.forEach((col) => col.splice(0, drop));
    }
  }

  clear(): void {
    this.x.length = 0;
    this.ys.forEach((col) => (col.length = 0));
  }
}
