// The client router: `/`, `/topology/{id}` and `/topology/{id}/component/{c}` are one
// page (the server answers index.html for each), switched without reloading.

import { h } from "./dom";
import type { Page } from "./pages/common";
import { componentPage } from "./pages/component";
import { listPage } from "./pages/list";
import { topologyPage } from "./pages/topology";

const app = document.getElementById("app") ?? document.body.appendChild(h("div", { id: "app" }));
let current: Page | null = null;

function segments(path: string): string[] | null {
  try {
    return path.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    return null;
  }
}

function route(): void {
  current?.dispose();
  delete app.dataset.refreshes;
  const params = new URLSearchParams(location.search);
  const seg = segments(location.pathname);
  if (seg && seg.length === 0) current = listPage(app);
  else if (seg && seg.length === 2 && seg[0] === "topology") current = topologyPage(app, seg[1], params, navigate);
  else if (seg && seg.length === 4 && seg[0] === "topology" && seg[2] === "component") {
    current = componentPage(app, seg[1], seg[3], params, navigate);
  } else {
    current = null;
    app.replaceChildren(h("main", null, h("h1", null, "Not found"), h("p", null, h("a", { href: "/", "data-nav": true }, "Topologies"))));
  }
  window.scrollTo(0, 0);
}

function navigate(href: string): void {
  if (href === location.pathname + location.search) return;
  history.pushState(null, "", href);
  route();
}

document.addEventListener("click", (e) => {
  const a = (e.target as Element | null)?.closest?.("a[data-nav]");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute("href") ?? "/");
});
window.addEventListener("popstate", route);
route();
