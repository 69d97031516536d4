import si from 'systeminformation';

/**
 * The figures of the MQTT `health` message that are not in `pacs-edge status --json`: the
 * board (CPU load, memory, temperature when it has a sensor, via `systeminformation`), the
 * spool's watermark state, rates, and errors by kind. Counts and states only.
 */
export interface SystemFigures {
  cpuLoadPercent: number | null;
  loadAverage1m: number | null;
  memory: { totalBytes: number; usedBytes: number; processRssBytes: number };
  temperatureC: number | null;
}

/** Spool watermark: `ok`; `low` below twice `spool.minFreeBytes` (early warning); `full` below it (C-STORE refused with 0xA700). */
export type Watermark = 'ok' | 'low' | 'full';

export function watermark(freeBytes: number, minFreeBytes: number): Watermark {
  if (freeBytes < minFreeBytes) return 'full';
  if (freeBytes < 2 * minFreeBytes) return 'low';
  return 'ok';
}

let cached: { at: number; value: SystemFigures } | undefined;

/** Board figures, refreshed at most every 5 s (systeminformation reads /proc and /sys). */
export async function systemFigures(): Promise<SystemFigures> {
  if (cached && Date.now() - cached.at < 5000) return cached.value;
  const [load, mem, temp] = await Promise.all([si.currentLoad().catch(() => undefined), si.mem().catch(() => undefined), si.cpuTemperature().catch(() => undefined)]);
  const value: SystemFigures = {
    cpuLoadPercent: load ? Math.round(load.currentLoad * 10) / 10 : null,
    loadAverage1m: load?.avgLoad ?? null,
    memory: { totalBytes: mem?.total ?? 0, usedBytes: mem?.active ?? 0, processRssBytes: process.memoryUsage().rss },
    temperatureC: typeof temp?.main === 'number' && Number.isFinite(temp.main) ? temp.main : null,
  };
  cached = { at: Date.now(), value };
  return value;
}

/** Objects per second between two calls (received objects). */
export class Rate {
  private last: { n: number; at: number } | undefined;
  perSecond(n: number): number {
    const now = Date.now();
    const prev = this.last;
    this.last = { n, at: now };
    if (!prev || now <= prev.at) return 0;
    return Math.round(((n - prev.n) / ((now - prev.at) / 1000)) * 10) / 10;
  }
}
