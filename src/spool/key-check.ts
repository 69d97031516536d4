import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { listFiles, parseRecord, readHead, readLines, recordHmac, sameHex } from '../audit/chain.js';
import type { GatewayConfig } from '../config/types.js';
import { PacsEdgeError } from '../errors.js';
import { spoolKeyRefusal } from './recovery.js';
import { isSealed, SEALED_HEAD_BYTES, sealedHeaderProblem } from '../security/sealed-file.js';
import { closeFd, openFd, readFd } from '../util/fd.js';
import type { DeviceKey } from '../security/device-key.js';
import { sealKeyOf } from '../security/spool-key.js';

/**
 * Does this device key fit the data on this box? Asked before anything is opened or appended
 * with it: a wrong key must stop a start (or a command) with a message that names the key file,
 * never be discovered by dead-lettering every queued image as corrupt or by chaining new audit
 * records that the right key will then reject.
 *
 * - Spool: the first sealed object file that the key opens answers yes (one header read in the
 *   normal case); sealed files and none opening is a refusal.
 * - Audit trail: a head that fails its HMAC alone is tampering and is alarmed at open
 *   (src/audit/trail.ts); a head *and* the newest record both failing is the wrong key.
 *
 * @throws PacsEdgeError SPOOL_KEY_MISMATCH | SPOOL_FORMAT_UNKNOWN | DEVICE_KEY_MISMATCH (nothing was changed)
 */
export async function checkDeviceKeyFits(config: GatewayConfig, key: DeviceKey, parts: { spool?: boolean; audit?: boolean } = { spool: true, audit: true }): Promise<void> {
  if (parts.spool !== false) await checkSpool(config, key);
  if (parts.audit !== false) await checkAudit(config, key);
}

async function checkSpool(config: GatewayConfig, key: DeviceKey): Promise<void> {
  const objects = path.join(config.spool.dir, 'objects');
  let names: string[];
  try {
    names = (await readdir(objects)).filter((n) => /^\d{16}\.dcm$/.test(n)).sort();
  } catch {
    return;
  }
  const seal = sealKeyOf(key, 'aes-256-gcm');
  let sealed = 0;
  let first: ReturnType<typeof sealedHeaderProblem>;
  for (const n of names) {
    let head: Buffer;
    try {
      const fd = await openFd(path.join(objects, n), 'r');
      try {
        const buf = Buffer.alloc(SEALED_HEAD_BYTES);
        head = buf.subarray(0, await readFd(fd, buf, 0));
      } finally {
        await closeFd(fd).catch(() => undefined);
      }
    } catch {
      continue; // gone meanwhile, or unreadable: recovery will say
    }
    if (!isSealed(head)) continue;
    const problem = sealedHeaderProblem(seal, head);
    if (!problem) return;
    sealed++;
    first ??= problem;
  }
  if (sealed > 0 && first) throw spoolKeyRefusal(first, sealed, config.spool.dir, config.spool.encryption.keyFile);
}

async function checkAudit(config: GatewayConfig, key: DeviceKey): Promise<void> {
  const chainKey = key.derive('audit-chain');
  const head = await readHead(config.audit.dir, chainKey).catch(() => undefined);
  if (head?.state !== 'invalid') return;
  const files = await listFiles(config.audit.dir).catch(() => [] as string[]);
  for (let i = files.length - 1; i >= 0; i--) {
    const { lines } = await readLines(path.join(config.audit.dir, files[i]!));
    for (let k = lines.length - 1; k >= 0; k--) {
      const r = parseRecord(lines[k]!.text);
      if (!r) continue;
      if (sameHex(r.hmac, recordHmac(chainKey, r.prev, r.seq, r.at, r.xml))) return;
      throw new PacsEdgeError(
        'DEVICE_KEY_MISMATCH',
        `the device key ${config.spool.encryption.keyFile} verifies neither the head nor the newest record of the audit trail in ${config.audit.dir}: it is not the key this box's data was made with. Put back the right key file (pacs-edge restore from a backup) and start again. Nothing was changed.`,
        { retryable: false, details: { keyFile: config.spool.encryption.keyFile, auditDir: config.audit.dir } },
      );
    }
  }
}
