// Time-series charts (uPlot) over the points the page keeps client-side.

import uPlot from "uplot";
import type { History } from "./model";

export interface SeriesStyle {
  label: string;
  stroke: string;
  unit: string;
}

/** A chart of one History, resized with its container. */
export class Chart {
  private readonly plot: uPlot;
  private readonly resize: ResizeObserver;

  constructor(
    el: HTMLElement,
    title: string,
    private readonly history: History,
    styles: SeriesStyle[],
  ) {
    const unit = styles[0]?.unit ?? "";
    const opts: uPlot.Options = {
      title,
      width: width(el),
      height: 200,
      scales: {
        // Until there are points, the last minute, rather than uPlot's guess.
        x: { time: true, range: (_u, min, max) => (Number.isFinite(min) && max > min ? [min, max] : lastMinute()) },
        y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [{}, { size: 70, values: (_u, vals) => vals.map((v) => `${fmt(v)}${unit}`) }],
      series: [
        {},
        ...styles.map((s) => ({
          label: s.label,
          stroke: s.stroke,
          width: 2,
          spanGaps: false,
          value: (_u: uPlot, v: number | null) => (v === null ? "–" : `${fmt(v)}${s.unit}`),
        })),
      ],
      legend: { live: true },
    };
    this.plot = new uPlot(opts, this.data(), el);
    this.resize = new ResizeObserver(() => {
      this.plot.setSize({ width: width(el), height: 200 });
    });
    this.resize.observe(el);
  }

  private data(): uPlot.AlignedData {
    return [this.history.x, ...this.history.ys] as uPlot.AlignedData;
  }

  /** Redraws from the history. */
  refresh(): void {
    this.plot.setData(this.data());
  }

  destroy(): void {
    this.resize.disconnect();
    this.plot.destroy();
  }
}

function width(el: HTMLElement): number {
  return Math.max(280, el.clientWidth);
}

function lastMinute(): [number, number] {
  const now = Date.now() / 1000;
  return [now - 60, now];
}

function fmt(v: number): string {
  if (v >= 1e6) return +(v / 1e6).toFixed(1) + "M";
  if (v >= 1e3) return +(v / 1e3).toFixed(1) + "k";
  return String(+v.toFixed(v >= 10 ? 0 : 2));
}
