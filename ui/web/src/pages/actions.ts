// Storm's topology actions: each asks for confirmation, then POSTs to the API.

import { api } from "../api";
import { h } from "../dom";
import { confirmDialog, problem, type Field } from "./common";

interface Spec {
  action: "activate" | "deactivate" | "rebalance" | "kill";
  label: string;
  text: string;
  danger?: boolean;
  fields?: Field[];
  /** Enabled for these statuses. */
  when: string[];
}

const SPECS: Spec[] = [
  { action: "activate", label: "Activate", text: "Its spouts start emitting again.", when: ["INACTIVE"] },
  {
    action: "deactivate",
    label: "Deactivate",
    text: "Its spouts stop emitting; tuples already in flight are still processed.",
    when: ["ACTIVE"],
  },
  {
    action: "rebalance",
    label: "Rebalance",
    text: "Deactivates it for the wait, then spreads its executors again.",
    fields: [
      { name: "wait", label: "Wait (seconds)", value: "30" },
      { name: "numWorkers", label: "Workers", value: "", placeholder: "unchanged" },
    ],
    when: ["ACTIVE", "INACTIVE"],
  },
  {
    action: "kill",
    label: "Kill",
    text: "Deactivates it, waits, then stops it for good.",
    danger: true,
    fields: [{ name: "wait", label: "Wait (seconds)", value: "30" }],
    when: ["ACTIVE", "INACTIVE", "REBALANCING"],
  },
];

function wholeNumber(s: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(s) || Number(s) < min || Number(s) > max) {
    throw new Error(`${what} must be a whole number from ${min} to ${max}`);
  }
  return Number(s);
}

/** The path and body of an action from the dialog's values. */
function request(spec: Spec, v: Record<string, string>): [string, unknown] {
  switch (spec.action) {
    case "rebalance": {
      const wait = wholeNumber(v.wait ?? "", "the wait", 0, 86400);
      const workers = v.numWorkers ? wholeNumber(v.numWorkers, "workers", 1, 65535) : undefined;
      return [`rebalance/${wait}`, workers === undefined ? undefined : { rebalanceOptions: { numWorkers: workers } }];
    }
    case "kill":
      return [`kill/${wholeNumber(v.wait ?? "", "the wait", 0, 86400)}`, undefined];
    default:
      return [spec.action, undefined];
  }
}

/** The action buttons (`#act-deactivate`…) and the line saying how the last one went. */
export function actionBar(id: string, done: () => void): { el: HTMLElement; update(status: string): void } {
  const result = h("span", { id: "action-result", role: "status" });
  const say = (text: string, ok: boolean) => {
    result.textContent = text;
    result.className = ok ? "ok" : "bad";
  };
  const run = async (spec: Spec) => {
    const values = await confirmDialog({
      title: `${spec.label} topology ${id}?`,
      text: spec.text,
      confirm: spec.label,
      danger: spec.danger,
      fields: spec.fields,
    });
    if (!values) return;
    let req: [string, unknown];
    try {
      req = request(spec, values);
    } catch (e) {
      say(`${spec.label}: ${(e as Error).message}`, false);
      return;
    }
    try {
      say(`${spec.label}: sent…`, true);
      const r = await api.act(id, req[0], req[1]);
      say(`${spec.label}: ${r.status}`, true);
    } catch (e) {
      say(`${spec.label} failed: ${problem(e)}`, false);
    }
    done();
  };
  const buttons = SPECS.map((spec) => ({
    spec,
    button: h("button", { id: `act-${spec.action}`, class: spec.danger ? "danger" : undefined, onclick: () => void run(spec) }, spec.label),
  }));
  return {
    el: h("div", { class: "actions" }, ...buttons.map((b) => b.button), result),
    update(status) {
      for (const b of buttons) b.button.disabled = !b.spec.when.includes(status);
    },
  };
}
