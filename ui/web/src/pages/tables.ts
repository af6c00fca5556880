// Storm's tables of a topology page: its windows, spouts, bolts and their last errors.

import type { BoltRow, LastError, SpoutRow, WindowStats } from "../api";
import { ago, h, link, table, when, type Child, type Column } from "../dom";
import { queueFill, type LagRow } from "../model";

export function componentHref(topology: string, component: string, params = ""): string {
  return `/topology/${encodeURIComponent(topology)}/component/${encodeURIComponent(component)}${params}`;
}

function errorColumns<T extends LastError>(): Column<T>[] {
  return [
    { key: "errorHost", title: "Error host", cell: (r) => r.errorHost },
    { key: "errorPort", title: "Error port", cell: (r) => r.errorPort ?? "" },
    { key: "lastError", title: "Last error", cell: (r) => h("span", { class: "error-text" }, r.lastError) },
    { key: "errorTime", title: "Error time", cell: (r) => when(r.errorTime) },
  ];
}

function n<T>(key: string, title: string, cell: (row: T) => Child, tip?: string): Column<T> {
  return { key, title, cell, tip, numeric: true };
}

export function statsTable(stats: WindowStats[]): HTMLTableElement {
  return table<WindowStats>(
    "topology-stats",
    [
      { key: "windowPretty", title: "Window", cell: (w) => w.windowPretty },
      n("emitted", "Emitted", (w: WindowStats) => w.emitted),
      n("transferred", "Transferred", (w: WindowStats) => w.transferred),
      n("completeLatency", "Complete latency (ms)", (w: WindowStats) => w.completeLatency),
      n("acked", "Acked", (w: WindowStats) => w.acked),
      n("failed", "Failed", (w: WindowStats) => w.failed),
    ],
    stats,
    (w) => w.window,
  );
}

export function spoutsTable(topology: string, rows: SpoutRow[], query: string): HTMLTableElement {
  return table<SpoutRow>(
    "spouts",
    [
      { key: "spoutId", title: "Id", cell: (s) => link(componentHref(topology, s.spoutId, query), s.spoutId) },
      n("executors", "Executors", (s: SpoutRow) => s.executors),
      n("tasks", "Tasks", (s: SpoutRow) => s.tasks),
      n("emitted", "Emitted", (s: SpoutRow) => s.emitted),
      n("transferred", "Transferred", (s: SpoutRow) => s.transferred),
      n("completeLatency", "Complete latency (ms)", (s: SpoutRow) => s.completeLatency),
      n("acked", "Acked", (s: SpoutRow) => s.acked),
      n("failed", "Failed", (s: SpoutRow) => s.failed),
      n("pending", "Pending", (s: SpoutRow) => s.pending, "tuple trees in flight now"),
      n("backpressure", "Back-pressure", (s: SpoutRow) => s.backpressure, "share of the window spent waiting on full queues downstream"),
      ...errorColumns<SpoutRow>(),
    ],
    rows,
    (s) => s.spoutId,
  );
}

export function boltsTable(topology: string, rows: BoltRow[], query: string, roots: Set<string>): HTMLTableElement {
  return table<BoltRow>(
    "bolts",
    [
      { key: "boltId", title: "Id", cell: (b) => link(componentHref(topology, b.boltId, query), b.boltId) },
      n("executors", "Executors", (b: BoltRow) => b.executors),
      n("tasks", "Tasks", (b: BoltRow) => b.tasks),
      n("emitted", "Emitted", (b: BoltRow) => b.emitted),
      n("transferred", "Transferred", (b: BoltRow) => b.transferred),
      n("capacity", "Capacity (last 10m)", (b: BoltRow) => b.capacity, "share of the last 10 minutes the busiest executor spent executing; near 1 is saturated"),
      n("executeLatency", "Execute latency (ms)", (b: BoltRow) => b.executeLatency),
      n("executed", "Executed", (b: BoltRow) => b.executed),
      n("processLatency", "Process latency (ms)", (b: BoltRow) => b.processLatency),
      n("acked", "Acked", (b: BoltRow) => b.acked),
      n("failed", "Failed", (b: BoltRow) => b.failed),
      n("queue", "Input queue", (b: BoltRow) => queueText(b), "tuples waiting / queue capacity, now"),
      n("backpressure", "Back-pressure", (b: BoltRow) => b.backpressure, "share of the window spent waiting on full queues downstream"),
      ...errorColumns<BoltRow>(),
    ],
    rows,
    (b) => b.boltId,
    (b) => (roots.has(b.boltId) ? "root" : undefined),
  );
}

/** The Kafka spouts' lag: one row per spout and partition. */
export function lagTable(topology: string, rows: LagRow[], query: string): HTMLTableElement {
  return table<LagRow>(
    "kafka-lag",
    [
      { key: "spoutId", title: "Spout", cell: (r) => link(componentHref(topology, r.spout, query), r.spout) },
      { key: "topic", title: "Topic", cell: (r) => r.topic },
      n("partition", "Partition", (r: LagRow) => r.partition),
      n("consumerCommittedOffset", "Committed offset", (r: LagRow) => r.committed ?? "–", "the consumer group's committed offset"),
      n("logHeadOffset", "Log head offset", (r: LagRow) => r.head, "the partition's high watermark"),
      n("lag", "Lag", (r: LagRow) => r.lag, "records between the spout's progress and the log head"),
    ],
    rows,
    (r) => `${r.spout}/${r.topic}/${r.partition}`,
  );
}

export function queueText(q: { queueDepth: number; queueCapacity: number }): string {
  const fill = queueFill(q);
  return fill === null ? "–" : `${q.queueDepth} / ${q.queueCapacity}`;
}

/** The components' last errors, newest first. */
export function errorsList(topology: string, rows: (LastError & { id: string })[], query: string): HTMLElement {
  const errs = rows.filter((r) => r.lastError).sort((a, b) => (b.errorTime ?? 0) - (a.errorTime ?? 0));
  if (errs.length === 0) return h("p", { id: "errors", class: "empty" }, "No errors reported.");
  return h(
    "ul",
    { id: "errors", class: "errors" },
    ...errs.map((e) =>
      h(
        "li",
        { "data-id": e.id },
        link(componentHref(topology, e.id, query), e.id),
        " ",
        h("span", { class: "muted", title: when(e.errorTime) }, ago(e.errorLapsedSecs)),
        e.errorHost ? h("span", { class: "muted" }, ` on ${e.errorHost}${e.errorPort ? ":" + e.errorPort : ""}`) : null,
        h("pre", { class: "error-text" }, e.lastError),
      ),
    ),
  );
}
