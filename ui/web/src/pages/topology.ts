// `/topology/{id}`: the live graph, the charts, Storm's tables, errors and actions.

import { api, ApiError, type TopologyLag, type TopologyPage, type Visualization } from "../api";
import { Chart } from "../charts";
import { h, link, put } from "../dom";
import { legend, TopologyGraph, type NodeFigures } from "../graph";
import { live, type Live, type Poll } from "../live";
import { History, isSystem, lagRows, queueFill } from "../model";
import { actionBar } from "./actions";
import { badge, banner, facts, frame, pageQuery, Poller, problem, section, sysParam, windowParam, windowSelect, type Page } from "./common";
import { topologyHref } from "./list";
import { boltsTable, componentHref, errorsList, lagTable, queueText, spoutsTable, statsTable } from "./tables";

/** Set once the first graph is on screen: what the first-paint figure measures to. */
export const GRAPH_MARK = "squall:graph-rendered";

/** Components that emit on several streams: their edges need per-stream counts. */
function multiStream(viz: Visualization): string[] {
  const streams = new Map<string, Set<string>>();
  for (const e of viz.edges) streams.set(e.from, (streams.get(e.from) ?? new Set()).add(e.stream));
  return [...streams].filter(([, s]) => s.size > 1).map(([c]) => c);
}

/**
 * One refresh: all-time counters (for rates), the 10-minute window (for back pressure
 * and latencies) and the graph, these two with system components, which back pressure
 * can start at; then the window the tables show.
 */
async function fetchPoll(id: string, win: string, sys: boolean): Promise<[Poll, TopologyPage, TopologyLag]> {
  const [all, ten, viz, lag] = await Promise.all([
    api.topology(id, ":all-time", sys),
    api.topology(id, "600", true),
    api.visualization(id, true),
    api.lag(id),
  ]);
  const [shown, pages] = await Promise.all([
    win === ":all-time" ? all : api.topology(id, win, sys),
    Promise.all(multiStream(viz).map((c) => api.component(id, c, ":all-time"))),
  ]);
  const streams = new Map(pages.map((p) => [p.id, new Map(p.outputStats.map((o) => [o.stream, o.emitted]))]));
  return [{ all, ten, viz, streams }, shown, lag];
}

/** The graph to draw: system components only when asked for. */
function shape(viz: Visualization, sys: boolean): Visualization {
  if (sys) return viz;
  return {
    ...viz,
    nodes: viz.nodes.filter((n) => !isSystem(n.id)),
    edges: viz.edges.filter((e) => !isSystem(e.from) && !isSystem(e.to)),
  };
}

function nodeFigures(p: Poll, l: Live): Map<string, NodeFigures> {
  const m = new Map<string, NodeFigures>();
  for (const n of p.viz.nodes) {
    const flow = l.flows.get(n.id);
    const bolt = p.all.bolts.find((b) => b.boltId === n.id);
    m.set(n.id, {
      executors: n.executors,
      rate: l.rates.get(n.id) ?? null,
      capacity: n.type === "spout" ? null : Number(bolt?.capacity ?? n.capacity),
      queueFill: queueFill(n),
      queue: queueText(n),
      backpressure: flow?.backpressure ?? 0,
      root: l.roots.has(n.id),
    });
  }
  return m;
}

function rootNote(l: Live, sys: boolean): string {
  if (l.roots.size === 0) return "";
  const names = [...l.roots].join(", ");
  const hidden = !sys && [...l.roots].some(isSystem) ? " (a system component: show them to see it)" : "";
  return `Back pressure starts at ${names}${hidden}: its input queue is full while the components feeding it wait.`;
}


export function topologyPage(root: HTMLElement, id: string, params: URLSearchParams, navigate: (href: string) => void): Page {
  const win = windowParam(params);
  const sys = sysParam(params);
  const query = pageQuery(win, sys);
  const err = banner();
  const head = h("div", { id: "summary" });
  const sysBox = h("input", {
    type: "checkbox",
    id: "sys",
    checked: sys,
    onchange: () => navigate(topologyHref(id, pageQuery(win, sysBox.checked))),
  });
  const actions = actionBar(id, () => void poller.now());
  const graphEl = h("div", { id: "graph", class: "graph" });
  const note = h("p", { id: "bp-note", class: "note" });
  const throughputEl = h("div", { id: "chart-throughput", class: "chart" });
  const latencyEl = h("div", { id: "chart-latency", class: "chart" });
  const stats = h("div");
  const spouts = h("div");
  const bolts = h("div");
  const lagEl = h("div");
  // Shown only while some spout reports a lag (Kafka spouts).
  const lagSection = section("Kafka spouts lag", lagEl);
  lagSection.id = "kafka-lag-section";
  lagSection.hidden = true;
  const errors = h("div");
  root.replaceChildren(
    frame(
      [link("/", "Topologies")],
      id,
      err.el,
      head,
      actions.el,
      section(h("span", null, "Graph ", h("label", { class: "window" }, sysBox, " Show system components")), graphEl, legend(), note),
      section("Throughput and latency", h("div", { class: "charts" }, throughputEl, latencyEl)),
      section("Topology stats", stats),
      section(h("span", null, "Spouts ", windowSelect(win, (w) => navigate(topologyHref(id, pageQuery(w, sys))))), spouts),
      section("Bolts", bolts),
      lagSection,
      section("Recent errors", errors),
    ),
  );
  document.title = `${id} · Squall`;
  const graph = new TopologyGraph(graphEl, (c) => navigate(componentHref(id, c, query)));
  const throughput = new History(["spouts emitted/s", "acked/s", "failed/s"]);
  const latency = new History(["complete latency", "process latency"]);
  const charts = [
    new Chart(throughputEl, "Tuples per second", throughput, [
      { label: "emitted by spouts", stroke: "#2563eb", unit: "/s" },
      { label: "acked", stroke: "#16a34a", unit: "/s" },
      { label: "failed", stroke: "#dc2626", unit: "/s" },
    ]),
    new Chart(latencyEl, "Latency (ms, mean over each refresh)", latency, [
      { label: "complete", stroke: "#7c3aed", unit: " ms" },
      { label: "bolts' process", stroke: "#ea580c", unit: " ms" },
    ]),
  ];
  let prev: Poll | null = null;
  let refreshes = 0;

  const render = (p: Poll, shown: TopologyPage, lag: TopologyLag) => {
    const l = live(prev, p);
    if (l.dt === null) {
      throughput.clear();
      latency.clear();
    }
    const t = Date.now() / 1000;
    throughput.push(t, l.throughput);
    latency.push(t, l.latency);
    charts.forEach((c) => c.refresh());
    const first = graph.setShape(shape(p.viz, sys)) && refreshes === 0;
    graph.update(nodeFigures(p, l), l.edgeRates);
    note.textContent = rootNote(l, sys);
    if (first) {
      // After the frame that shows the graph has been painted.
      requestAnimationFrame(() => setTimeout(() => performance.mark(GRAPH_MARK), 0));
    }
    put(
      head,
      facts([
        ["Status", badge(p.all.status, "status"), "status"],
        ["Uptime", p.all.uptime, "uptime"],
        ["Workers", p.all.workersTotal, "workersTotal"],
        ["Executors", p.all.executorsTotal, "executorsTotal"],
        ["Tasks", p.all.tasksTotal, "tasksTotal"],
        ["Message timeout", `${p.all.msgTimeout} s`, "msgTimeout"],
      ]),
    );
    actions.update(p.all.status);
    put(stats, statsTable(shown.topologyStats));
    put(spouts, spoutsTable(id, shown.spouts, query));
    put(bolts, boltsTable(id, shown.bolts, query, l.roots));
    const lags = lagRows(lag);
    lagSection.hidden = lags.length === 0;
    put(lagEl, lags.length === 0 ? null : lagTable(id, lags, query));
    const rows = [...p.all.spouts.map((s) => ({ ...s, id: s.spoutId })), ...p.all.bolts.map((b) => ({ ...b, id: b.boltId }))];
    put(errors, errorsList(id, rows, query));
    prev = p;
    root.dataset.refreshes = String(++refreshes);
  };

  const poller = new Poller(async () => {
    try {
      const [p, shown, lag] = await fetchPoll(id, win, sys);
      err.show(null);
      render(p, shown, lag);
    } catch (e) {
      const gone = e instanceof ApiError && e.status === 404;
      err.show(gone ? `Topology ${id} is not running (it was killed, or the run ended).` : problem(e));
      if (gone) actions.update("KILLED");
    }
  });
  return {
    dispose() {
      poller.stop();
      charts.forEach((c) => c.destroy());
    },
  };
}
