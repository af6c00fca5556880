// Building DOM from data without innerHTML, so names from the API are always text.

export type Child = Node | string | number | null | undefined | false;
type Attr = string | number | boolean | null | undefined | ((e: Event) => void);
export type Attrs = Record<string, Attr>;

function fill(el: Element, attrs: Attrs | null | undefined, children: Child[]): void {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else if (v !== false && v !== null && v !== undefined) el.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "object" ? c : String(c));
  }
}

/** An HTML element; attributes named `on…` are listeners. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  fill(el, attrs, children);
  return el;
}

/** An SVG element. */
export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  fill(el, attrs, children);
  return el;
}

/** A link the client router follows without reloading the page. */
export function link(href: string, ...children: Child[]): HTMLAnchorElement {
  return h("a", { href, "data-nav": true }, ...children);
}

export interface Column<T> {
  /** `data-col` of the cells, which tests and styles select on. */
  key: string;
  title: string;
  /** What the header's tooltip explains. */
  tip?: string;
  cell: (row: T) => Child;
  numeric?: boolean;
}

/** A table with one row per item; rows carry `data-id`, cells `data-col`. */
export function table<T>(
  id: string,
  columns: Column<T>[],
  rows: T[],
  rowId: (row: T) => string,
  rowClass?: (row: T) => string | undefined,
): HTMLTableElement {
  const head = h(
    "tr",
    null,
    ...columns.map((c) => h("th", { title: c.tip, class: c.numeric ? "num" : undefined }, c.title)),
  );
  const body = rows.map((r) =>
    h(
      "tr",
      { "data-id": rowId(r), class: rowClass?.(r) },
      ...columns.map((c) => h("td", { "data-col": c.key, class: c.numeric ? "num" : undefined }, c.cell(r))),
    ),
  );
  const empty = rows.length === 0 ? h("tr", null, h("td", { colspan: columns.length, class: "empty" }, "none")) : null;
  return h("table", { id, class: "grid" }, h("thead", null, head), h("tbody", null, ...body, empty));
}

/** Replaces `el`'s children. */
export function put(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  fill(el, null, children);
}

/** Seconds since the epoch as local date and time. */
export function when(secs: number | null | undefined): string {
  if (secs === null || secs === undefined) return "";
  return new Date(secs * 1000).toLocaleString();
}

/** Storm's `45s`, `3m 2s`... for a number of seconds. */
export function ago(secs: number | null | undefined): string {
  if (secs === null || secs === undefined) return "";
  const d = Math.floor(secs / 86400);
  const hr = Math.floor(secs / 3600) % 24;
  const m = Math.floor(secs / 60) % 60;
  const s = Math.floor(secs % 60);
  if (d) return `${d}d ${hr}h ago`;
  if (hr) return `${hr}h ${m}m ago`;
  if (m) return `${m}m ${s}s ago`;
  return `${s}s ago`;
}
