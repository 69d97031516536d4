import { spawnSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ORTHANC, ROOT } from './receivers.js';

export interface MachineFacts {
  nproc: number;
  cpuModel: string;
  memTotalBytes: number;
  kernel: string;
  node: string;
  dcmtk: string;
  orthanc: string;
  dcmjsDimse: string;
  gateway: string;
  tmpDir: string;
  tmpFilesystem: { mountPoint: string; type: string; device: string; options: string };
  strace: string | null;
}

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  if (r.error) return `unavailable (${r.error.message})`;
  return `${r.stdout}${r.stderr}`.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? 'unknown';
}

function mountOf(dir: string): MachineFacts['tmpFilesystem'] {
  const real = realpathSync(dir);
  let best = { mountPoint: '/', type: 'unknown', device: 'unknown', options: '' };
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [device, mp, type, options] = line.split(' ');
    if (!device || !mp || !type) continue;
    const mountPoint = mp.replace(/\\040/g, ' ');
    const inside = real === mountPoint || real.startsWith(mountPoint.endsWith('/') ? mountPoint : `${mountPoint}/`);
    if (inside && mountPoint.length >= best.mountPoint.length) best = { mountPoint, type, device, options: options ?? '' };
  }
  return best;
}

export function machineFacts(): MachineFacts {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const strace = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  return {
    nproc: Number(firstLine('nproc', [])),
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown',
    memTotalBytes: Number(/^MemTotal:\s+(\d+) kB/m.exec(meminfo)?.[1] ?? 0) * 1024,
    kernel: `${os.type()} ${os.release()} (${os.version()})`,
    node: process.version,
    dcmtk: firstLine('storescu', ['--version']).replace(/^\$dcmtk:\s*/, '').replace(/\s*\$$/, ''),
    orthanc: firstLine(ORTHANC, ['--version']),
    dcmjsDimse: (JSON.parse(readFileSync(path.join(ROOT, 'node_modules/dcmjs-dimse/package.json'), 'utf8')) as { version: string }).version,
    gateway: firstLine(process.execPath, [path.join(ROOT, 'dist/src/cli/main.js'), '--version']),
    tmpDir: os.tmpdir(),
    tmpFilesystem: mountOf(os.tmpdir()),
    strace: strace.error || strace.status !== 0 ? null : strace.stdout.split('\n')[0]!.trim(),
  };
}
