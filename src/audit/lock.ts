import { readFileSync } from 'node:fs';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PacsEdgeError } from '../errors.js';
import { LOCK_FILE } from './chain.js';

/** One writer per audit directory: `audit.lock` holds its pid; a lock whose process is gone is taken over. */
export async function acquireLock(dir: string): Promise<void> {
  const file = path.join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(file, `${process.pid}\n`, { flag: 'wx', mode: 0o640 });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid) && mayHoldTrail(pid)) {
      throw new PacsEdgeError('AUDIT_LOCKED', `the audit trail in ${dir} is open in process ${pid}`, { details: { pid } });
    }
    await unlink(file).catch(() => {});
  }
  throw new PacsEdgeError('AUDIT_LOCKED', `could not take the audit lock in ${dir}`);
}

export async function releaseLock(dir: string): Promise<void> {
  const file = path.join(dir, LOCK_FILE);
  const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
  if (pid === process.pid) await unlink(file).catch(() => {});
}

/**
 * Whether the process with this pid can be the lock's holder: a Node process (gateway, command or
 * test). After a power loss the lock file survives, and at the next boot its pid may well belong
 * to some other daemon: a lock that could never be taken again would keep the gateway from ever
 * starting. Where /proc cannot tell, the pid is taken at its word.
 */
function mayHoldTrail(pid: number): boolean {
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
  } catch {
    return true;
  }
  const argv0 = cmdline.split('\0')[0] ?? '';
  return /node|pacs-edge/i.test(path.basename(argv0)) || cmdline.includes('pacs-edge');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
