// The REST API's answers (see ui/README.md) and the calls the pages make. Latencies and
// capacity are strings with three decimals, as Storm sends them.

export interface Rates {
  emitted: number;
  transferred: number;
  executed: number;
  acked: number;
  failed: number;
}

export interface LastError {
  lastError: string;
  errorHost: string;
  errorPort: number | null;
  errorTime: number | null;
  errorLapsedSecs: number | null;
}

export interface SpoutRow extends LastError {
  spoutId: string;
  executors: number;
  tasks: number;
  emitted: number;
  transferred: number;
  completeLatency: string;
  acked: number;
  failed: number;
  pending: number;
  backpressure: string;
  rates: Rates;
}

export interface BoltRow extends LastError {
  boltId: string;
  executors: number;
  tasks: number;
  emitted: number;
  transferred: number;
  capacity: string;
  executeLatency: string;
  executed: number;
  processLatency: string;
  acked: number;
  failed: number;
  queueDepth: number;
  queueCapacity: number;
  backpressure: string;
  rates: Rates;
}

export interface WindowStats {
  windowPretty: string;
  window: string;
  emitted: number;
  transferred: number;
  completeLatency: string;
  acked: number;
  failed: number;
  seconds: number;
  rates: Rates;
}

export interface TopologyRow {
  id: string;
  name: string;
  status: string;
  uptime: string;
  uptimeSeconds: number;
  tasksTotal: number;
  workersTotal: number;
  executorsTotal: number;
}

export interface TopologyPage extends TopologyRow {
  msgTimeout: number;
  window: string;
  windowHint: string;
  topologyStats: WindowStats[];
  spouts: SpoutRow[];
  bolts: BoltRow[];
}

export interface ClusterSummary {
  stormVersion: string;
  supervisors: number;
  topologies: number;
  executorsTotal: number;
  tasksTotal: number;
}

export interface VizNode {
  id: string;
  type: string;
  executors: number;
  tasks: number;
  capacity: string;
  latency: string;
  emitted: number;
  transferred: number;
  queueDepth: number;
  queueCapacity: number;
}

export interface VizEdge {
  from: string;
  to: string;
  stream: string;
  grouping: string;
}

export interface Visualization {
  topologyId: string;
  window: string;
  nodes: VizNode[];
  edges: VizEdge[];
}

export interface ComponentWindowStats {
  windowPretty: string;
  window: string;
  emitted: number;
  transferred: number;
  completeLatency?: string;
  executeLatency?: string;
  executed?: number;
  processLatency?: string;
  acked: number;
  failed: number;
  seconds: number;
  rates: Rates;
}

export interface InputStats {
  component: string;
  stream: string;
  executeLatency: string;
  processLatency: string;
  executed: number;
  acked: number;
  failed: number;
}

export interface OutputStats {
  stream: string;
  emitted: number;
  transferred: number;
  completeLatency?: string;
  acked?: number;
  failed?: number;
}

export interface ExecutorStats {
  id: string;
  host: string;
  port: number | null;
  worker?: string;
  uptime: string;
  uptimeSeconds: number;
  emitted: number;
  transferred: number;
  completeLatency?: string;
  capacity?: string;
  executeLatency?: string;
  executed?: number;
  processLatency?: string;
  acked: number;
  failed: number;
}

export interface ComponentError {
  error: string;
  errorTime: number;
  errorHost: string;
  errorPort: number | null;
  errorLapsedSecs: number;
}

export interface ComponentPage {
  id: string;
  name: string;
  topologyId: string;
  topologyStatus: string;
  componentType: "spout" | "bolt";
  window: string;
  windowHint: string;
  executors: number;
  tasks: number;
  componentErrors: ComponentError[];
  spoutSummary?: ComponentWindowStats[];
  boltStats?: ComponentWindowStats[];
  inputStats?: InputStats[];
  outputStats: OutputStats[];
  executorStats: ExecutorStats[];
  capacity?: string;
  queueDepth: number;
  queueCapacity: number;
}

/** One partition in Storm's spout lag. */
export interface PartitionLag {
  /** null while the spout does not know the group's committed offset. */
  consumerCommittedOffset: number | null;
  logHeadOffset: number;
  lag: number;
}

/** `topology/{id}/lag`: by spout id; only spouts with lag figures (Kafka spouts). */
export type TopologyLag = Record<
  string,
  { spoutId: string; spoutType: string; spoutLagResult: Record<string, Record<string, PartitionLag>> }
>;

export interface ActionDone {
  topologyOperation: string;
  topologyId: string;
  status: string;
}

/** An answer other than 200, with Storm's `errorMessage` when the body has one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Storm's `window` values, shortest first, with what its UI calls them. */
export const WINDOWS: ReadonlyArray<[string, string]> = [
  ["600", "10 minutes"],
  ["10800", "3 hours"],
  ["86400", "1 day"],
  [":all-time", "All time"],
];

const BASE = "/api/v1/";

/**
 * On a cluster the API wants the caller's Kubernetes bearer token (it asks the API server
 * who the caller is and what they may do). The page asks for one on the first 401 and
 * keeps it for the tab's session only; locally the API asks for none.
 */
const TOKEN_KEY = "squall.token";

function token(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function askToken(): boolean {
  const t = window.prompt("Kubernetes bearer token (for example: kubectl create token NAME)");
  if (!t || !t.trim()) return false;
  sessionStorage.setItem(TOKEN_KEY, t.trim());
  return true;
}

async function send(path: string, init?: RequestInit): Promise<Response> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (init?.body) headers["content-type"] = "application/json";
  const t = token();
  if (t) headers["authorization"] = `Bearer ${t}`;
  return fetch(BASE + path, { ...init, headers });
}

async function call<T>(path: string, init?: RequestInit): Promise<T> {
  const sent = token();
  let r = await send(path, init);
  if (r.status === 401) {
    // Another request may have asked for a token meanwhile: use it rather than ask again.
    const now = token();
    if (now && now !== sent) {
      r = await send(path, init);
    } else {
      // A token that expired or was never given: ask once, then retry with it.
      sessionStorage.removeItem(TOKEN_KEY);
      if (askToken()) r = await send(path, init);
    }
  }
  const text = await r.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // A proxy's HTML error page: reported by status below.
  }
  if (!r.ok) {
    const msg = (body as { errorMessage?: string } | null)?.errorMessage;
    throw new ApiError(r.status, msg || `${r.status} ${r.statusText}`);
  }
  return body as T;
}

const enc = encodeURIComponent;

export const api = {
  cluster: () => call<ClusterSummary>("cluster/summary"),
  topologies: () => call<{ topologies: TopologyRow[] }>("topology/summary"),
  /** `sys`: include system components such as `__acker`. */
  topology: (id: string, window: string, sys = false) =>
    call<TopologyPage>(`topology/${enc(id)}?window=${enc(window)}${sys ? "&sys=1" : ""}`),
  visualization: (id: string, sys = false) =>
    call<Visualization>(`topology/${enc(id)}/visualization${sys ? "?sys=1" : ""}`),
  lag: (id: string) => call<TopologyLag>(`topology/${enc(id)}/lag`),
  component: (id: string, c: string, window: string) =>
    call<ComponentPage>(`topology/${enc(id)}/component/${enc(c)}?window=${enc(window)}`),
  /** `action` is `activate`, `deactivate`, `rebalance/{wait}` or `kill/{wait}`. */
  act: (id: string, action: string, body?: unknown) =>
    call<ActionDone>(`topology/${enc(id)}/${action}`, {
      method: "POST",
      body: body === undefined ? undefined : JSON.stringify(body),
    }),
};
