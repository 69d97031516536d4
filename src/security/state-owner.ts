import { statSync } from 'node:fs';
import type { GatewayConfig } from '../config/types.js';

/**
 * Work as the owner of the gateway's state. A field engineer runs `sudo pacs-edge …` on a box
 * whose gateway runs as the service user (`pacs-edge`): a command that opened the spool's
 * LevelDB index, appended to the audit trail or wrote `owner.json` as root would leave files the
 * service cannot write, and the next start would fail or its audit writes would. So, when run
 * as root and the state directory (`spool.dir`, else `audit.dir`) belongs to another user, the
 * process becomes that user (its group, no supplementary groups) before it touches the state.
 * Irreversible for the process, on purpose. Returns who it became, or undefined (unchanged).
 */
export function actAsStateOwner(config: GatewayConfig): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0 || !process.setuid || !process.setgid) return undefined;
  const st = stateOwner(config);
  if (!st) return undefined;
  process.setgroups?.([st.gid]);
  process.setgid(st.gid);
  process.setuid(st.uid);
  return { uid: st.uid, gid: st.gid };
}

/** Owner of the state directory (`spool.dir`, else `audit.dir`) when it is not root; undefined otherwise. */
export function stateOwner(config: GatewayConfig): { uid: number; gid: number } | undefined {
  for (const dir of [config.spool.dir, config.audit.dir]) {
    try {
      const st = statSync(dir);
      return st.uid === 0 ? undefined : { uid: st.uid, gid: st.gid };
    } catch {
      /* not made yet: try the next one */
    }
  }
  return undefined;
}
