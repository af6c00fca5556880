// `/`: the cluster's summary and its topologies.

import { api, type TopologyRow } from "../api";
import { h, link, put, table } from "../dom";
import { badge, banner, facts, frame, Poller, problem, section, type Page } from "./common";

export function topologyHref(id: string, params = ""): string {
  return `/topology/${encodeURIComponent(id)}${params}`;
}

export function listPage(root: HTMLElement): Page {
  const err = banner();
  const cluster = h("div");
  const list = h("div");
  root.replaceChildren(
    frame([h("span", null, "Squall")], "Topologies", err.el, cluster, section("Topology summary", list)),
  );
  document.title = "Topologies · Squall";
  let refreshes = 0;
  const poller = new Poller(async () => {
    try {
      const [c, s] = await Promise.all([api.cluster(), api.topologies()]);
      err.show(null);
      put(
        cluster,
        facts([
          ["Version", c.stormVersion],
          ["Topologies", c.topologies],
          ["Hosts", c.supervisors],
          ["Executors", c.executorsTotal],
          ["Tasks", c.tasksTotal],
        ]),
      );
      put(
        list,
        table<TopologyRow>(
          "topologies",
          [
            { key: "name", title: "Name", cell: (t) => link(topologyHref(t.id), t.name) },
            { key: "id", title: "Id", cell: (t) => t.id },
            { key: "status", title: "Status", cell: (t) => badge(t.status) },
            { key: "uptime", title: "Uptime", cell: (t) => t.uptime },
            { key: "workersTotal", title: "Num workers", cell: (t) => t.workersTotal, numeric: true },
            { key: "executorsTotal", title: "Num executors", cell: (t) => t.executorsTotal, numeric: true },
            { key: "tasksTotal", title: "Num tasks", cell: (t) => t.tasksTotal, numeric: true },
          ],
          s.topologies,
          (t) => t.id,
        ),
      );
      root.dataset.refreshes = String(++refreshes);
    } catch (e) {
      err.show(problem(e));
    }
  });
  return { dispose: () => poller.stop() };
}
