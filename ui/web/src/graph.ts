// The topology graph: laid out by dagre once per shape (so nodes stay where they are
// while figures change), drawn as SVG whose elements carry the model in data-*
// attributes (data-id, data-from, data-to, data-stream) for people's tools and tests.

import { Graph, layout } from "@dagrejs/dagre";
import { h, svg } from "./dom";
import { capacityColour, compact, edgeKey } from "./model";

export interface GraphShape {
  nodes: ReadonlyArray<{ id: string; type: string }>;
  edges: ReadonlyArray<{ from: string; to: string; stream: string; grouping: string }>;
}

/** What a node shows now. */
export interface NodeFigures {
  executors: number;
  /** Tuples per second: emitted by a spout, executed by a bolt. */
  rate: number | null;
  /** Bolts: Storm's capacity over the last 10 minutes. */
  capacity: number | null;
  /** Input queue depth over capacity, when the queue is known. */
  queueFill: number | null;
  queue: string;
  /** Share of time waiting on full queues downstream. */
  backpressure: number;
  root: boolean;
}

const W = 176;
const H = 64;

function shapeKey(s: GraphShape): string {
  const n = s.nodes.map((n) => `${n.id}:${n.type}`).sort();
  const e = s.edges.map(edgeKey).sort();
  return JSON.stringify([n, e]);
}

function short(id: string, max = 22): string {
  return id.length > max ? id.slice(0, max - 1) + "…" : id;
}

/** A smooth path through dagre's points. */
function pathThrough(pts: ReadonlyArray<{ x: number; y: number }>): string {
  if (pts.length < 2) return "";
  let d = `M${pts[0].x},${pts[0].y}`;
  for (let i = 1; i < pts.length - 1; i++) {
    const mx = (pts[i].x + pts[i + 1].x) / 2;
    const my = (pts[i].y + pts[i + 1].y) / 2;
    d += ` Q${pts[i].x},${pts[i].y} ${mx},${my}`;
  }
  const last = pts[pts.length - 1];
  return d + ` L${last.x},${last.y}`;
}

interface NodeEls {
  g: SVGGElement;
  box: SVGRectElement;
  figures: SVGTextElement;
  detail: SVGTextElement;
  fill: SVGRectElement;
  flag: SVGTextElement;
  title: SVGTitleElement;
  kind: string;
}

interface EdgeEls {
  g: SVGGElement;
  path: SVGPathElement;
  label: SVGTextElement;
  stream: string;
}

export class TopologyGraph {
  private key = "";
  private nodes = new Map<string, NodeEls>();
  private edges = new Map<string, EdgeEls>();
  readonly el: HTMLElement;

  constructor(
    el: HTMLElement,
    private readonly open: (component: string) => void,
  ) {
    this.el = el;
  }

  /** Lays out and draws a new shape; false when the shape is the one drawn. */
  setShape(shape: GraphShape): boolean {
    const key = shapeKey(shape);
    if (key === this.key) return false;
    this.key = key;
    const g = new Graph({ multigraph: true });
    g.setGraph({ rankdir: "LR", nodesep: 22, ranksep: 72, edgesep: 14, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const n of shape.nodes) g.setNode(n.id, { width: W, height: H });
    for (const e of shape.edges) {
      if (!g.hasNode(e.from) || !g.hasNode(e.to)) continue;
      g.setEdge(e.from, e.to, { width: 64, height: 14, labelpos: "c" }, e.stream);
    }
    layout(g);
    const { width = 0, height = 0 } = g.graph() as { width?: number; height?: number };
    this.nodes.clear();
    this.edges.clear();
    const edgeEls = shape.edges
      .filter((e) => g.hasNode(e.from) && g.hasNode(e.to))
      .map((e) => this.drawEdge(e, g.edge({ v: e.from, w: e.to, name: e.stream })));
    const nodeEls = shape.nodes.map((n) => this.drawNode(n, g.node(n.id)));
    const root = svg(
      "svg",
      {
        id: "graph-svg",
        viewBox: `0 0 ${Math.ceil(width)} ${Math.ceil(height)}`,
        width: Math.ceil(width),
        height: Math.ceil(height),
        role: "img",
        "aria-label": "topology graph",
        "data-nodes": shape.nodes.length,
        "data-edges": edgeEls.length,
      },
      svg(
        "defs",
        null,
        svg(
          "marker",
          {
            id: "arrow",
            viewBox: "0 0 10 10",
            refX: 9,
            refY: 5,
            // In user units, so thick edges keep small arrowheads.
            markerUnits: "userSpaceOnUse",
            markerWidth: 9,
            markerHeight: 9,
            orient: "auto",
          },
          svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }),
        ),
      ),
      svg("g", { class: "edges" }, ...edgeEls),
      svg("g", { class: "nodes" }, ...nodeEls),
    );
    this.el.replaceChildren(root);
    return true;
  }

  private drawEdge(
    e: GraphShape["edges"][number],
    lay: { points?: { x: number; y: number }[]; x?: number; y?: number },
  ): SVGGElement {
    const path = svg("path", { d: pathThrough(lay.points ?? []), "marker-end": "url(#arrow)" });
    // Above the line, in the room dagre kept for it.
    const label = svg("text", { x: lay.x ?? 0, y: (lay.y ?? 0) - 5, "text-anchor": "middle", class: "rate" });
    const stream = e.stream === "default" ? "" : `${e.stream} `;
    const g = svg(
      "g",
      { class: "edge", "data-from": e.from, "data-to": e.to, "data-stream": e.stream, "data-grouping": e.grouping },
      svg("title", null, `${e.from} → ${e.to}\nstream ${e.stream}, ${e.grouping} grouping`),
      path,
      label,
    );
    this.edges.set(edgeKey(e), { g, path, label, stream });
    return g;
  }

  private drawNode(n: { id: string; type: string }, lay: { x?: number; y?: number }): SVGGElement {
    const x = (lay.x ?? 0) - W / 2;
    const y = (lay.y ?? 0) - H / 2;
    const title = svg("title");
    const box = svg("rect", { class: "box", width: W, height: H, rx: n.type === "spout" ? 18 : 6 });
    const name = svg("text", { class: "name", x: 10, y: 18 }, short(n.id));
    const detail = svg("text", { class: "detail", x: 10, y: 34 });
    const figures = svg("text", { class: "figures", x: 10, y: 49 });
    const track = svg("rect", { class: "qtrack", x: 10, y: 55, width: W - 20, height: 4, rx: 2 });
    const fill = svg("rect", { class: "qfill", x: 10, y: 55, width: 0, height: 4, rx: 2 });
    const flag = svg("text", { class: "flag", x: W - 8, y: 18, "text-anchor": "end" });
    const g = svg(
      "g",
      {
        class: `node ${n.type}`,
        "data-id": n.id,
        "data-kind": n.type,
        transform: `translate(${x},${y})`,
        tabindex: 0,
        role: "link",
        onclick: () => this.open(n.id),
        onkeydown: (ev: Event) => {
          if ((ev as KeyboardEvent).key === "Enter") this.open(n.id);
        },
      },
      title,
      box,
      name,
      detail,
      figures,
      track,
      fill,
      flag,
    );
    this.nodes.set(n.id, { g, box, figures, detail, fill, flag, title, kind: n.type });
    return g;
  }

  /** Shows the current figures without moving anything. */
  update(figures: Map<string, NodeFigures>, edgeRates: Map<string, number | null>): void {
    for (const [id, els] of this.nodes) {
      const f = figures.get(id);
      if (!f) continue;
      const spout = els.kind === "spout";
      els.box.setAttribute("fill", spout ? "hsl(210, 60%, 90%)" : capacityColour(f.capacity));
      const rate = f.rate === null ? "–" : `${compact(f.rate)}/s`;
      els.detail.textContent = `${els.kind} · ${f.executors} executor${f.executors === 1 ? "" : "s"}`;
      els.figures.textContent = spout
        ? `${rate} emitted`
        : `${rate} · cap ${f.capacity === null ? "–" : f.capacity.toFixed(2)}`;
      const q = f.queueFill === null ? 0 : Math.min(1, Math.max(0, f.queueFill));
      els.fill.setAttribute("width", String((W - 20) * q));
      els.fill.setAttribute("class", q >= 0.8 ? "qfill full" : "qfill");
      els.g.classList.toggle("root", f.root);
      els.g.classList.toggle("waiting", f.backpressure >= 0.01);
      els.g.setAttribute("data-root", String(f.root));
      els.flag.textContent = f.root ? "⚠ root" : f.backpressure >= 0.01 ? `waits ${Math.round(f.backpressure * 100)}%` : "";
      els.title.textContent = [
        `${id} (${els.kind})`,
        `${spout ? "emitted" : "executed"}: ${rate}`,
        spout ? "" : `capacity (last 10m): ${f.capacity?.toFixed(3) ?? "–"}`,
        `queue: ${f.queue}`,
        `back-pressure: ${(f.backpressure * 100).toFixed(1)}% of the time`,
        f.root ? "back-pressure root: its input queue is full while upstream waits" : "",
      ]
        .filter(Boolean)
        .join("\n");
    }
    const rates = [...edgeRates.values()].filter((r): r is number => r !== null);
    const max = Math.max(1, ...rates);
    for (const [key, els] of this.edges) {
      const r = edgeRates.get(key) ?? null;
      const width = r === null ? 1.2 : 1.2 + (3.8 * Math.log10(1 + r)) / Math.log10(1 + max);
      els.path.setAttribute("stroke-width", width.toFixed(2));
      els.g.setAttribute("data-rate", r === null ? "" : r.toFixed(3));
      els.label.textContent = els.stream + (r === null ? "" : `${compact(r)}/s`);
    }
  }
}

/** The graph's legend. */
export function legend(): HTMLElement {
  const swatch = (fill: string, cls?: string) =>
    svg("svg", { width: 14, height: 14, class: "swatch" }, svg("rect", { width: 14, height: 14, rx: 3, fill, class: cls }));
  return h(
    "div",
    { class: "legend" },
    swatch(capacityColour(0.05)),
    " idle ",
    swatch(capacityColour(0.5)),
    " half busy ",
    swatch(capacityColour(1)),
    " saturated (capacity, last 10m) · ",
    swatch("white", "legend-root"),
    " back-pressure root · bar: input queue fill · edge width: tuples/s",
  );
}
