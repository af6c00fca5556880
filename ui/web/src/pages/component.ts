// `/topology/{id}/component/{c}`: a spout's or bolt's figures per window, its streams,
// its executors and its errors.

import { api, ApiError, type ComponentPage, type ComponentWindowStats, type ExecutorStats, type InputStats, type OutputStats } from "../api";
import { ago, h, link, put, table, when, type Child, type Column } from "../dom";
import { badge, banner, facts, frame, pageQuery, Poller, problem, section, sysParam, windowParam, windowSelect, type Page } from "./common";
import { topologyHref } from "./list";
import { componentHref, queueText } from "./tables";

function n<T>(key: string, title: string, cell: (row: T) => Child, tip?: string): Column<T> {
  return { key, title, cell, tip, numeric: true };
}

function windowsTable(c: ComponentPage): HTMLTableElement {
  const spout = c.componentType === "spout";
  const cols: Column<ComponentWindowStats>[] = [
    { key: "windowPretty", title: "Window", cell: (w) => w.windowPretty },
    n("emitted", "Emitted", (w) => w.emitted),
    n("transferred", "Transferred", (w) => w.transferred),
    ...(spout
      ? [n<ComponentWindowStats>("completeLatency", "Complete latency (ms)", (w) => w.completeLatency)]
      : [
          n<ComponentWindowStats>("executeLatency", "Execute latency (ms)", (w) => w.executeLatency),
          n<ComponentWindowStats>("executed", "Executed", (w) => w.executed),
          n<ComponentWindowStats>("processLatency", "Process latency (ms)", (w) => w.processLatency),
        ]),
    n("acked", "Acked", (w) => w.acked),
    n("failed", "Failed", (w) => w.failed),
  ];
  return table("component-stats", cols, (spout ? c.spoutSummary : c.boltStats) ?? [], (w) => w.window);
}

function inputsTable(topology: string, rows: InputStats[], query: string): HTMLTableElement {
  return table<InputStats>(
    "inputs",
    [
      { key: "component", title: "Component", cell: (i) => link(componentHref(topology, i.component, query), i.component) },
      { key: "stream", title: "Stream", cell: (i) => i.stream },
      n("executeLatency", "Execute latency (ms)", (i) => i.executeLatency),
      n("executed", "Executed", (i) => i.executed),
      n("processLatency", "Process latency (ms)", (i) => i.processLatency),
      n("acked", "Acked", (i) => i.acked),
      n("failed", "Failed", (i) => i.failed),
    ],
    rows,
    (i) => `${i.component}:${i.stream}`,
  );
}

function outputsTable(rows: OutputStats[], spout: boolean): HTMLTableElement {
  const cols: Column<OutputStats>[] = [
    { key: "stream", title: "Stream", cell: (o) => o.stream },
    n("emitted", "Emitted", (o) => o.emitted),
    n("transferred", "Transferred", (o) => o.transferred),
  ];
  if (spout) {
    cols.push(
      n("completeLatency", "Complete latency (ms)", (o) => o.completeLatency),
      n("acked", "Acked", (o) => o.acked),
      n("failed", "Failed", (o) => o.failed),
    );
  }
  return table("outputs", cols, rows, (o) => o.stream);
}

function executorsTable(rows: ExecutorStats[], spout: boolean): HTMLTableElement {
  const cols: Column<ExecutorStats>[] = [
    { key: "id", title: "Id", cell: (e) => e.id },
    { key: "uptime", title: "Uptime", cell: (e) => e.uptime },
    { key: "host", title: "Host", cell: (e) => e.host },
    { key: "port", title: "Port", cell: (e) => e.port ?? "" },
    { key: "worker", title: "Worker", cell: (e) => e.worker ?? "" },
    n("emitted", "Emitted", (e) => e.emitted),
    n("transferred", "Transferred", (e) => e.transferred),
  ];
  if (spout) cols.push(n("completeLatency", "Complete latency (ms)", (e) => e.completeLatency));
  else {
    cols.push(
      n("capacity", "Capacity (last 10m)", (e) => e.capacity),
      n("executeLatency", "Execute latency (ms)", (e) => e.executeLatency),
      n("executed", "Executed", (e) => e.executed),
      n("processLatency", "Process latency (ms)", (e) => e.processLatency),
    );
  }
  cols.push(n("acked", "Acked", (e) => e.acked), n("failed", "Failed", (e) => e.failed));
  return table("executors", cols, rows, (e) => e.id);
}

function errorsOf(c: ComponentPage): HTMLElement {
  if (c.componentErrors.length === 0) return h("p", { id: "errors", class: "empty" }, "No errors reported.");
  return h(
    "ul",
    { id: "errors", class: "errors" },
    ...c.componentErrors.map((e) =>
      h(
        "li",
        null,
        h("span", { class: "muted", title: when(e.errorTime) }, ago(e.errorLapsedSecs)),
        e.errorHost ? h("span", { class: "muted" }, ` on ${e.errorHost}${e.errorPort ? ":" + e.errorPort : ""}`) : null,
        h("pre", { class: "error-text" }, e.error),
      ),
    ),
  );
}

export function componentPage(
  root: HTMLElement,
  id: string,
  component: string,
  params: URLSearchParams,
  navigate: (href: string) => void,
): Page {
  const win = windowParam(params);
  const sys = sysParam(params);
  const query = pageQuery(win, sys);
  const err = banner();
  const head = h("div", { id: "summary" });
  const body = h("div");
  const select = windowSelect(win, (w) =>
    navigate(componentHref(id, component, pageQuery(w, sys))),
  );
  root.replaceChildren(frame([link("/", "Topologies"), link(topologyHref(id, query), id)], component, err.el, head, select, body));
  document.title = `${component} · ${id} · Squall`;
  let refreshes = 0;
  const poller = new Poller(async () => {
    try {
      const c = await api.component(id, component, win);
      err.show(null);
      const spout = c.componentType === "spout";
      put(
        head,
        facts([
          ["Type", c.componentType, "componentType"],
          ["Topology", h("span", null, link(topologyHref(id, query), c.name), " ", badge(c.topologyStatus, "status")), "topology"],
          ["Executors", c.executors, "executors"],
          ["Tasks", c.tasks, "tasks"],
          ...(spout ? [] : ([["Capacity (last 10m)", c.capacity ?? "", "capacity"], ["Input queue", queueText(c), "queue"]] as [string, Child, string][])),
        ]),
      );
      put(
        body,
        section(`${spout ? "Spout" : "Bolt"} stats`, windowsTable(c)),
        spout ? null : section("Input stats", inputsTable(id, c.inputStats ?? [], query)),
        section("Output stats", outputsTable(c.outputStats, spout)),
        section("Executors", executorsTable(c.executorStats, spout)),
        section("Errors", errorsOf(c)),
      );
      root.dataset.refreshes = String(++refreshes);
    } catch (e) {
      const gone = e instanceof ApiError && e.status === 404;
      err.show(gone ? `${component} is not in a running topology ${id}.` : problem(e));
    }
  });
  return { dispose: () => poller.stop() };
}
