// What the pages share: polling, the window selector, the confirmation dialog, and
// Storm's number formats.

import { ApiError, WINDOWS } from "../api";
import { h, type Child } from "../dom";

/** How often pages ask the API again. */
export const REFRESH_MS = 3000;

export interface Page {
  dispose(): void;
}

/**
 * Calls `tick` now and then every REFRESH_MS after the previous call finished, so slow
 * answers never pile up; `now()` asks again at once.
 */
export class Poller {
  private timer: number | undefined;
  private stopped = false;
  private running: Promise<void> | null = null;

  constructor(private readonly tick: () => Promise<void>) {
    void this.now();
  }

  async now(): Promise<void> {
    if (this.running) await this.running;
    // Another caller may have started the next tick while this one waited.
    if (this.running) return this.running;
    if (this.stopped) return;
    window.clearTimeout(this.timer);
    this.running = this.tick().finally(() => {
      this.running = null;
      if (!this.stopped) this.timer = window.setTimeout(() => void this.now(), REFRESH_MS);
    });
    return this.running;
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.timer);
  }
}

/** The message of a failed call, for a banner. */
export function problem(e: unknown): string {
  if (e instanceof ApiError) return `${e.status}: ${e.message}`;
  return `the API did not answer (${e instanceof Error ? e.message : String(e)})`;
}

/** A banner that shows the latest failure, or nothing. */
export function banner(): { el: HTMLElement; show(msg: string | null): void } {
  const el = h("div", { class: "banner", role: "alert", hidden: true });
  return {
    el,
    show(msg) {
      el.hidden = msg === null;
      el.textContent = msg ?? "";
    },
  };
}

/** Storm's window selector; `onChange` gets the new `window` value. */
export function windowSelect(current: string, onChange: (w: string) => void): HTMLElement {
  const sel = h(
    "select",
    { id: "window", onchange: () => onChange(sel.value) },
    ...WINDOWS.map(([v, label]) => h("option", { value: v, selected: v === current }, label)),
  );
  return h("label", { class: "window" }, "Window ", sel);
}

/** The `window` query parameter, if it is one of Storm's. */
export function windowParam(params: URLSearchParams): string {
  const w = params.get("window") ?? ":all-time";
  return WINDOWS.some(([v]) => v === w) ? w : ":all-time";
}

/** Storm's `sys=1` (or `true`): show system components. */
export function sysParam(params: URLSearchParams): boolean {
  return ["1", "true"].includes(params.get("sys") ?? "");
}

/** The query string of a topology or component page. */
export function pageQuery(win: string, sys: boolean): string {
  const q = new URLSearchParams();
  if (win !== ":all-time") q.set("window", win);
  if (sys) q.set("sys", "1");
  const s = q.toString();
  return s ? `?${s}` : "";
}

export interface Field {
  name: string;
  label: string;
  value: string;
  placeholder?: string;
}

/**
 * Asks before an action in a modal dialog (`#confirm`, its button `#confirm-ok`);
 * resolves with the fields' values, or null when cancelled.
 */
export function confirmDialog(opts: {
  title: string;
  text: Child;
  confirm: string;
  danger?: boolean;
  fields?: Field[];
}): Promise<Record<string, string> | null> {
  const inputs = (opts.fields ?? []).map((f) => ({
    f,
    input: h("input", { name: f.name, value: f.value, placeholder: f.placeholder, inputmode: "numeric", size: 8 }),
  }));
  const ok = h("button", { id: "confirm-ok", value: "ok", class: opts.danger ? "danger" : "primary" }, opts.confirm);
  const dialog = h(
    "dialog",
    { id: "confirm" },
    h(
      "form",
      { method: "dialog" },
      h("h3", null, opts.title),
      h("p", null, opts.text),
      ...inputs.map(({ f, input }) => h("label", { class: "field" }, f.label, " ", input)),
      h("div", { class: "buttons" }, h("button", { id: "confirm-cancel", value: "cancel" }, "Cancel"), ok),
    ),
  );
  document.body.append(dialog);
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const values = Object.fromEntries(inputs.map(({ f, input }) => [f.name, input.value.trim()]));
      dialog.remove();
      resolve(dialog.returnValue === "ok" ? values : null);
    });
    dialog.showModal();
    ok.focus();
  });
}

/** A page's frame: breadcrumbs, a title and what follows. */
export function frame(crumbs: Child[], title: Child, ...body: Child[]): HTMLElement {
  const trail = crumbs.flatMap((c, i) => (i === 0 ? [c] : [" / ", c]));
  return h("main", null, h("nav", { class: "crumbs" }, ...trail), h("h1", null, title), ...body);
}

export function section(title: Child, ...body: Child[]): HTMLElement {
  return h("section", null, h("h2", null, title), ...body);
}

/** A status as a coloured badge. */
export function badge(status: string, id?: string): HTMLElement {
  return h("span", { id, class: `badge ${status.toLowerCase()}` }, status);
}

/** A small definition list: pairs of label and value. */
export function facts(pairs: [string, Child, string?][]): HTMLElement {
  return h("dl", { class: "facts" }, ...pairs.flatMap(([k, v, key]) => [h("dt", null, k), h("dd", { "data-key": key }, v)]));
}
