import { spawn } from 'node:child_process';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { CLI, tempDir, writeGatewayConfig } from '../helpers/processes.js';

/**
 * Issue 14: under systemd the log lines carry their priority, so `journalctl -u pacs-edge -p err`
 * shows errors only. The gateway writes the sd-daemon(3) `<N>` prefix (the journal's
 * SyslogLevelPrefix=, on by default) when, and only when, its stdout is the journal's stream —
 * JOURNAL_STREAM names that stream's device:inode, as systemd sets it. Here the stream is the
 * test's pipe, named the same way.
 */
function runWithJournalStream(configFile: string, journal: boolean): Promise<string> {
  const setVar = journal ? 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/$$/fd/1) ' : '';
  return new Promise((resolve) => {
    const p = spawn('sh', ['-c', `${setVar}exec "${process.execPath}" "${CLI}" run --config "${configFile}"`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('exit', () => {
      clearTimeout(t);
      resolve(out);
    });
  });
}

describe('log priorities for the journal', () => {
  it('each line starts with its syslog priority when stdout is the journal stream (info 6, warn 4, error 3, fatal 2), and is plain JSON otherwise', { timeout: 60_000 }, async () => {
    const t = tempDir();
    const squatter = net.createServer();
    const taken = await new Promise<number>((r) => squatter.listen(0, '127.0.0.1', () => r((squatter.address() as net.AddressInfo).port)));
    try {
      // A taken port: the start fails, which logs at info, warn, error (audit) and fatal.
      const { configFile } = await writeGatewayConfig({ dir: t.dir, port: taken, config: { log: { level: 'info' } } });
      const journal = await runWithJournalStream(configFile, true);
      const lines = journal.split('\n').filter(Boolean);
      expect(lines.length).toBeGreaterThan(2);
      for (const l of lines) {
        const m = /^<(\d)>(\{.*\})$/.exec(l);
        expect(m, l).not.toBeNull();
        const level = (JSON.parse(m![2]!) as { level: string }).level;
        expect(Number(m![1]), l).toBe({ fatal: 2, error: 3, warn: 4, info: 6, debug: 7, trace: 7 }[level]);
      }
      expect(lines.some((l) => l.startsWith('<2>') && l.includes('gateway failed to start'))).toBe(true);
      expect(lines.some((l) => l.startsWith('<6>'))).toBe(true);
      // Not the journal's stream (a pipe of its own, a file): plain JSON lines, as the tests and tools read them.
      const plain = await runWithJournalStream(configFile, false);
      expect(plain.split('\n').filter(Boolean).every((l) => l.startsWith('{'))).toBe(true);
    } finally {
      squatter.close();
      t.cleanup();
    }
  });
});
