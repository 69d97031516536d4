import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { readStallMarker, STALL_MARKER } from '../../src/util/loop-watchdog.js';
import { ROOT, tempDir } from '../helpers/processes.js';

/**
 * The in-process watchdog (src/util/loop-watchdog.ts) in a real process: a child Node process
 * starts the compiled module (as the gateway does), then blocks its own event loop for good.
 * The watchdog's worker thread must kill it and leave the marker, durably, naming the stall.
 */
const tmp = tempDir('pacs-edge-loop-watchdog-');
afterAll(() => tmp.cleanup());

function child(script: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    // Bound: a watchdog that never fires must not hang the suite.
    const t = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('exit', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stderr });
    });
  });
}

const moduleUrl = pathToFileURL(path.join(ROOT, 'dist/src/util/loop-watchdog.js')).href;

describe('loop watchdog', () => {
  it('kills a process whose event loop is stuck (while(true){}) and leaves a durable marker naming the stall', async () => {
    const marker = path.join(tmp.dir, STALL_MARKER);
    const script = `
      import { startLoopWatchdog } from ${JSON.stringify(moduleUrl)};
      startLoopWatchdog({ stallMs: 2000, markerFile: ${JSON.stringify(marker)}, tickMs: 200, checkMs: 200 });
      // Let the loop turn a moment (the heartbeat runs), then block it for good.
      setTimeout(() => { process.stderr.write('blocking\\n'); while (true) {} }, 500);
    `;
    const r = await child(script);
    expect(r.stderr).toContain('blocking');
    expect(r.signal).toBe('SIGKILL');
    expect(existsSync(marker)).toBe(true);
    const m = readStallMarker(marker)!;
    expect(m.stallSeconds).toBe(2);
    expect(m.stalledSeconds).toBeGreaterThanOrEqual(2);
    expect(m.pid).toBeGreaterThan(0);
    expect(Number.isNaN(Date.parse(m.killedAt))).toBe(false);
    expect(r.stderr).toContain('WATCHDOG: the event loop has not run for');
    // Written whole (temporary file renamed), no temporary file left beside it.
    expect(JSON.parse(readFileSync(marker, 'utf8'))).toMatchObject({ pid: m.pid });
    expect(existsSync(`${marker}.tmp`)).toBe(false);
  });

  it('leaves a process whose loop keeps turning alone (busy but not stuck), and does not keep it alive', async () => {
    const marker = path.join(tmp.dir, 'alive', STALL_MARKER);
    const script = `
      import { mkdirSync } from 'node:fs';
      import { startLoopWatchdog } from ${JSON.stringify(moduleUrl)};
      mkdirSync(${JSON.stringify(path.dirname(marker))}, { recursive: true });
      startLoopWatchdog({ stallMs: 1500, markerFile: ${JSON.stringify(marker)}, tickMs: 100, checkMs: 100 });
      // 3 s of work in 300 ms slices: the loop turns between them.
      let n = 0;
      const slice = () => { const end = Date.now() + 300; while (Date.now() < end) {} if (++n < 10) setTimeout(slice, 0); };
      slice();
    `;
    const r = await child(script);
    // It ended on its own (the watchdog's worker and timer are unref'd), not killed.
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(existsSync(marker)).toBe(false);
  });
});
