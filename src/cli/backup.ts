import { recordOffline, safeUser } from './audit.js';
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { HEAD_FILE } from '../audit/chain.js';
import { loadConfig } from '../config/load.js';
import type { GatewayConfig } from '../config/types.js';
import { Code, ConfigError, type ErrorCode, PacsEdgeError } from '../errors.js';
import { DeviceKey } from '../security/device-key.js';
import { VERSION } from '../version.js';
import { controlAnswers, controlGet } from '../health/control-server.js';
import { deviceKeyFor, sealKeyOf, sealProfileOf } from '../security/spool-key.js';
import { holdSpoolLock, sealedFilesOpenedBy } from '../spool/open.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { actAsStateOwner } from '../security/state-owner.js';
import { writeDurableSync } from '../util/durable-write.js';
import { checkRestorePaths, makeDirsBelow } from './restore-paths.js';

/**
 * `pacs-edge backup` / `pacs-edge restore` (数据备份恢复, GB/T 22239-2019 §8.1.4.9): one
 * encrypted file with what a replacement device needs to take over — the configuration and the
 * profiles it extends, the device key (the root of the spool and audit keys), the TLS and MQTT
 * credential files the configuration names, and the audit trail's head. Not the spool (images)
 * and not the audit day files: those are data, not configuration.
 *
 * File format, version 1 (all of it authenticated; nothing but the format and the crypto
 * parameters is readable without the passphrase):
 *
 *   offset  size
 *        0    16  magic "PACS-EDGE-BACKUP"
 *       16     1  format version (1)
 *       17     1  KDF (1 = scrypt)
 *       18     1  scrypt log2(N) (17; backups made before read with their own, down to 10)
 *       19     1  scrypt r (8)
 *       20     1  scrypt p (1)
 *       21     3  zero
 *       24    16  salt
 *       40    12  AES-GCM nonce
 *       52    16  passphrase check: HMAC-SHA256(check key, bytes 0..51), first 16 bytes
 *       68     n  AES-256-GCM ciphertext of the JSON payload (additional data: bytes 0..67)
 *     68+n    16  GCM tag
 *
 * scrypt(passphrase, salt, 64 bytes): bytes 0..31 are the AES key, 32..63 the check key. The
 * check value only tells a wrong passphrase from a damaged file; the GCM tag is what protects
 * the content.
 */
export const BACKUP_MAGIC = Buffer.from('PACS-EDGE-BACKUP', 'latin1');
export const BACKUP_VERSION = 1;
const HEADER_BYTES = 68;
const TAG_BYTES = 16;
/** scrypt cost for new backups: N = 2^17 (128 MiB, about a second on the device), as OWASP advises for scrypt. */
const SCRYPT = { logN: 17, r: 8, p: 1 };
/** The most memory a backup's own KDF parameters may ask of a restore (a crafted header could ask for 128 GiB). */
const MAX_SCRYPT_MEMORY = 1024 * 1024 * 1024;
const MIN_PASSPHRASE = 12;

export type BackupRole = 'config' | 'profile' | 'device-key' | 'tls-cert' | 'tls-key' | 'tls-ca' | 'mqtt-password' | 'audit-head';

export interface BackupEntry {
  /** Absolute path on the device the backup was taken on. */
  path: string;
  role: BackupRole;
  /** 0o600 for keys and secrets, 0o640 otherwise. */
  mode: number;
  data: Buffer;
}

interface Payload {
  format: 'pacs-edge-backup';
  version: number;
  createdAt: string;
  pacsEdgeVersion: string;
  deviceId: string;
  config: string;
  files: { path: string; role: BackupRole; mode: number; sha256: string; data: string }[];
}

/** Why a backup cannot be made or read: a code of the backup rows of the one error table (src/error-codes.ts). */
export class BackupError extends PacsEdgeError {
  constructor(code: Extract<ErrorCode, 'NOT_A_BACKUP' | 'UNSUPPORTED_VERSION' | 'WRONG_PASSPHRASE' | 'TAMPERED' | 'EXISTS' | 'INVALID'>, message: string) {
    super(code, message, { retryable: false });
    this.name = 'BackupError';
  }
}

const SECRET_ROLES: ReadonlySet<BackupRole> = new Set(['device-key', 'tls-key', 'mqtt-password']);

/** The configuration file and every file it `extends`, in that order (absolute paths). */
export function configChain(file: string): string[] {
  const out: string[] = [];
  let current = path.resolve(file);
  while (!out.includes(current)) {
    out.push(current);
    const doc = parse(readFileSync(current, 'utf8')) as { extends?: unknown } | null;
    if (!doc || typeof doc.extends !== 'string') break;
    current = path.resolve(path.dirname(current), doc.extends);
  }
  return out;
}

/** What a backup of `configFile` holds, read from disk now; `notes` say what was left out and why. */
export function collectBackup(configFile: string): { config: GatewayConfig; entries: BackupEntry[]; notes: string[] } {
  const config = loadConfig(configFile);
  const entries: BackupEntry[] = [];
  const notes: string[] = [];
  const seen = new Set<string>();
  const add = (file: string | undefined, role: BackupRole, what: string): void => {
    if (!file || seen.has(file)) return;
    seen.add(file);
    let data: Buffer;
    try {
      data = readFileSync(file);
    } catch (err) {
      throw new BackupError('INVALID', `cannot read ${what} ${file}: ${(err as Error).message}`);
    }
    entries.push({ path: file, role, mode: SECRET_ROLES.has(role) ? 0o600 : 0o640, data });
  };
  const chain = configChain(configFile);
  chain.forEach((f, i) => add(f, i === 0 ? 'config' : 'profile', i === 0 ? 'configuration' : 'profile'));

  const keyFile = config.spool.encryption.keyFile;
  if (config.spool.encryption.keyCredential) {
    // From the systemd credential (run under systemd-run -p LoadCredentialEncrypted=…); refused when absent.
    seen.add(keyFile);
    entries.push({ path: keyFile, role: 'device-key', mode: 0o600, data: deviceKeyFor(config, { create: false }).exportForBackup() });
    notes.push(`device key taken from the credential ${config.spool.encryption.keyCredential}; a restore writes it to ${keyFile}: turn it into a credential again there (docs/operations.md)`);
  } else if (existsSync(keyFile)) {
    // Through DeviceKey.load: a key file of the wrong size is refused here, not found out at restore.
    const key = DeviceKey.load(keyFile).exportForBackup();
    seen.add(keyFile);
    entries.push({ path: keyFile, role: 'device-key', mode: 0o600, data: key });
  } else {
    notes.push(`device key ${keyFile} does not exist yet (the gateway makes it at its first start): not included`);
  }

  const tls = (t: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined } | undefined, where: string) => {
    if (!t) return;
    add(t.cert, 'tls-cert', `${where}.cert`);
    add(t.key, 'tls-key', `${where}.key`);
    add(t.ca, 'tls-ca', `${where}.ca`);
  };
  tls(config.receive.tls, 'receive.tls');
  config.forward.forEach((f, i) => tls(f.tls, `forward[${i}].tls`));
  tls(config.health.mqtt?.tls, 'health.mqtt.tls');
  add(config.health.mqtt?.passwordFile, 'mqtt-password', 'health.mqtt.passwordFile');

  // The audit section (src/audit/) may be absent from older configurations' types: read it loosely.
  const audit = (config as unknown as { audit?: { dir: string; syslog?: { ca?: string; cert?: string; key?: string } } }).audit;
  if (audit) {
    tls(audit.syslog, 'audit.syslog');
    const head = path.join(audit.dir, HEAD_FILE);
    if (existsSync(head)) add(head, 'audit-head', 'audit trail head');
    else notes.push(`audit trail head ${head} does not exist yet: not included`);
  }
  return { config, entries, notes };
}

/** Encrypt a backup payload under a passphrase (format in the module comment). */
export function sealBackup(payload: Buffer, passphrase: string): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  BACKUP_MAGIC.copy(header, 0);
  header[16] = BACKUP_VERSION;
  header[17] = 1;
  header[18] = SCRYPT.logN;
  header[19] = SCRYPT.r;
  header[20] = SCRYPT.p;
  randomBytes(16).copy(header, 24);
  randomBytes(12).copy(header, 40);
  const { encKey, checkKey } = deriveKeys(passphrase, header);
  createHmac('sha256', checkKey).update(header.subarray(0, 52)).digest().copy(header, 52, 0, 16);
  const cipher = createCipheriv('aes-256-gcm', encKey, header.subarray(40, 52));
  cipher.setAAD(header);
  const body = Buffer.concat([cipher.update(payload), cipher.final()]);
  return Buffer.concat([header, body, cipher.getAuthTag()]);
}

/** Decrypt and authenticate a backup file; throws {@link BackupError} with a clear reason. */
export function openBackup(file: Buffer, passphrase: string): Buffer {
  if (file.length < HEADER_BYTES + TAG_BYTES || !file.subarray(0, 16).equals(BACKUP_MAGIC)) {
    throw new BackupError('NOT_A_BACKUP', 'not a pacs-edge backup file');
  }
  const header = file.subarray(0, HEADER_BYTES);
  if (header[16] !== BACKUP_VERSION || header[17] !== 1) {
    throw new BackupError('UNSUPPORTED_VERSION', `backup format version ${header[16]} (KDF ${header[17]}) is not supported by pacs-edge ${VERSION} (it reads version ${BACKUP_VERSION})`);
  }
  const scryptMemory = 128 * 2 ** header[18]! * header[19]! * header[20]!;
  if (header[18]! < 10 || header[18]! > 20 || header[19]! < 1 || header[19]! > 32 || header[20]! < 1 || header[20]! > 16 || scryptMemory > MAX_SCRYPT_MEMORY) {
    throw new BackupError('TAMPERED', 'backup file is damaged or has been tampered with (KDF parameters out of range)');
  }
  const { encKey, checkKey } = deriveKeys(passphrase, header);
  const check = createHmac('sha256', checkKey).update(header.subarray(0, 52)).digest().subarray(0, 16);
  if (!timingSafeEqual(check, header.subarray(52, 68))) throw new BackupError('WRONG_PASSPHRASE', 'wrong passphrase for this backup (or its header is damaged)');
  const decipher = createDecipheriv('aes-256-gcm', encKey, header.subarray(40, 52));
  decipher.setAAD(header);
  decipher.setAuthTag(file.subarray(file.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(file.subarray(HEADER_BYTES, file.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new BackupError('TAMPERED', 'backup file is damaged or has been tampered with (AES-GCM authentication failed): nothing restored');
  }
}

function deriveKeys(passphrase: string, header: Buffer): { encKey: Buffer; checkKey: Buffer } {
  const N = 2 ** header[18]!;
  const r = header[19]!;
  const p = header[20]!;
  const k = scryptSync(Buffer.from(passphrase, 'utf8'), header.subarray(24, 40), 64, { N, r, p, maxmem: 256 * N * r * p + 1024 * 1024 });
  return { encKey: k.subarray(0, 32), checkKey: k.subarray(32, 64) };
}

/** The passphrase file's content without its trailing line break(s). */
export function readPassphrase(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new BackupError('INVALID', `cannot read the passphrase file ${file}: ${(err as Error).message}`);
  }
  const pass = text.replace(/[\r\n]+$/, '');
  if (pass.length === 0) throw new BackupError('INVALID', `the passphrase file ${file} is empty`);
  return pass;
}

function encodePayload(config: GatewayConfig, configFile: string, entries: BackupEntry[]): Buffer {
  const payload: Payload = {
    format: 'pacs-edge-backup',
    version: BACKUP_VERSION,
    createdAt: new Date().toISOString(),
    pacsEdgeVersion: VERSION,
    deviceId: config.device.id,
    config: path.resolve(configFile),
    files: entries.map((e) => ({ path: e.path, role: e.role, mode: e.mode, sha256: createHash('sha256').update(e.data).digest('hex'), data: e.data.toString('base64') })),
  };
  return Buffer.from(JSON.stringify(payload), 'utf8');
}

function decodePayload(bytes: Buffer): { config: string; deviceId: string; createdAt: string; entries: BackupEntry[] } {
  let p: Payload;
  try {
    p = JSON.parse(bytes.toString('utf8')) as Payload;
  } catch {
    throw new BackupError('INVALID', 'backup payload is not readable');
  }
  if (p.format !== 'pacs-edge-backup' || !Array.isArray(p.files)) throw new BackupError('INVALID', 'backup payload is not a pacs-edge backup');
  const entries = p.files.map((f): BackupEntry => {
    // Authenticated, so written by pacs-edge; still, a path must be absolute and plain.
    if (typeof f.path !== 'string' || !path.isAbsolute(f.path) || path.normalize(f.path) !== f.path || f.path.split('/').includes('..')) {
      throw new BackupError('INVALID', `backup names an unusable path ${JSON.stringify(f.path)}. Nothing was restored.`);
    }
    const data = Buffer.from(f.data, 'base64');
    if (createHash('sha256').update(data).digest('hex') !== f.sha256) throw new BackupError('INVALID', `backup copy of ${f.path} does not match its SHA-256`);
    return { path: f.path, role: f.role, mode: SECRET_ROLES.has(f.role) ? 0o600 : 0o640, data };
  });
  return { config: p.config, deviceId: p.deviceId, createdAt: p.createdAt, entries };
}

/**
 * Write `data` to `file` durably (temporary file, fsync, rename, directory fsync). Run as root
 * into a directory another user owns (the service's key directory), the file is given to that
 * owner: a device key only root can read would keep the gateway from starting.
 */
function writeDurably(file: string, data: Buffer, mode: number): void {
  const dir = statSync(path.dirname(file));
  const owner = process.getuid?.() === 0 && dir.uid !== 0 ? { uid: dir.uid, gid: dir.gid } : undefined;
  // The umask may take bits away: the mode is set exactly. The temporary file is made with
  // O_EXCL | O_NOFOLLOW and renamed over the target (a rename replaces a link, never follows it).
  writeDurableSync(file, data, { mode, exactMode: true, owner, tmp: `${file}.restore-${process.pid}.tmp`, noFollow: true });
}

/** `pacs-edge backup --config FILE --out FILE.peb --passphrase-file P [--force]` */
export async function backupCommand(configFile: string, args: string[], option: (name: string) => string | undefined): Promise<number> {
  const out = option('--out');
  const passFile = option('--passphrase-file');
  if (!out || !passFile) {
    console.error('pacs-edge backup: --out FILE.peb and --passphrase-file FILE are required');
    return 2;
  }
  try {
    const pass = readPassphrase(passFile);
    if (pass.length < MIN_PASSPHRASE) throw new BackupError('INVALID', `the passphrase must be at least ${MIN_PASSPHRASE} characters (it protects the device key)`);
    if (existsSync(out) && !args.includes('--force')) throw new BackupError('EXISTS', `${out} exists; use --force to replace it`);
    const { config, entries, notes } = collectBackup(configFile);
    const sealed = sealBackup(encodePayload(config, configFile, entries), pass);
    mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    writeDurably(path.resolve(out), sealed, 0o600);
    for (const e of entries) console.log(`  ${e.role.padEnd(13)} ${e.path} (${e.data.length} bytes)`);
    for (const n of notes) console.log(`  note: ${n}`);
    console.log(`${out}: backup of device ${config.device.id}, ${entries.length} file(s)${entries.some((e) => e.role === 'device-key') ? ', device key included' : ', no device key'}`);
    // The keys left the box (encrypted): a Security Alert, Use of Restricted Function (110132), not a failure.
    const keyEntry = entries.find((e) => e.role === 'device-key');
    if (keyEntry && existsSync(config.audit.dir)) {
      const key = deviceKeyFor(config, { create: false });
      // The backup only reads: the record goes through the inbox (as the trail's owner, state-owner.ts),
      // so the trail's files stay as they were; a stopped gateway records it at its next start.
      actAsStateOwner(config);
      const recorded = await recordOffline(config, key, {
        kind: 'security-alert',
        type: 'use-of-restricted-function',
        detail: `backup of the configuration and the device key written to ${path.resolve(out)} by ${safeUser()}`,
        failure: false,
      }, { readOnly: true });
      console.log(`audit: ${recorded}`);
    }
    return 0;
  } catch (err) {
    console.error(`pacs-edge backup: ${err instanceof ConfigError ? err.message : (err as Error).message}`);
    return 1;
  }
}

/**
 * `pacs-edge restore --in FILE.peb --passphrase-file P --root DIR [--force]`. When the
 * configuration it would replace exists, the gateway it belongs to must be stopped (its control
 * socket does not answer), the spool's lock is held while files are written, and a device key
 * that would leave queued objects unreadable is refused: restore never strands an acknowledged
 * object. Audited (110113 Security Alert, Security Configuration) with the operator's account.
 */
export async function restoreCommand(args: string[], option: (name: string) => string | undefined): Promise<number> {
  const input = option('--in');
  const passFile = option('--passphrase-file');
  const root = option('--root');
  if (!input || !passFile || !root) {
    console.error('pacs-edge restore: --in FILE.peb, --passphrase-file FILE and --root DIR are required (--root / restores in place)');
    return EXIT.usage;
  }
  let configTarget: string | undefined;
  try {
    const pass = readPassphrase(passFile);
    let sealed: Buffer;
    try {
      sealed = readFileSync(input);
    } catch (err) {
      throw new BackupError('INVALID', `cannot read ${input}: ${(err as Error).message}`);
    }
    // Everything is decrypted, authenticated and checked before the first file is written.
    const backup = decodePayload(openBackup(sealed, pass));
    const absRoot = path.resolve(root);
    configTarget = path.join(absRoot, backup.config);
    // Only into the directories the backup's configuration owns, through no planted link.
    const owners = checkRestorePaths(backup.config, backup.entries, absRoot);
    const targets = backup.entries.map((e) => ({ ...e, target: path.join(absRoot, e.path) }));
    const existing = targets.filter((t) => existsSync(t.target));
    if (existing.length > 0 && !args.includes('--force')) {
      throw new BackupError('EXISTS', `refusing to overwrite ${existing.map((t) => t.target).join(', ')}: use --force`);
    }
    // The gateway of the configuration being replaced, if there is one here.
    let current: GatewayConfig | undefined;
    try {
      if (existsSync(configTarget)) current = loadConfig(configTarget);
    } catch {
      current = undefined;
    }
    const write = async () => {
      if (current) await refuseStrandingKey(current, targets);
      for (const t of targets) {
        makeDirsBelow(owners.get(backup.entries.find((e) => e.path === t.path)!)!, path.dirname(t.target), t.role === 'device-key' ? 0o700 : 0o750);
        writeDurably(t.target, t.data, t.mode);
        console.log(`  ${t.role.padEnd(13)} ${t.target} (mode ${t.mode.toString(8)})`);
      }
    };
    if (current) {
      if (await controlAnswers(current.control.socket)) {
        console.error(`pacs-edge restore: the gateway of ${configTarget} is running (it answers on ${current.control.socket}): stop it first (systemctl stop pacs-edge). Nothing was restored.`);
        return EXIT.spoolBusy;
      }
      await holdSpoolLock(current, write);
    } else await write();
    console.log(`${input}: restored ${targets.length} file(s) of device ${backup.deviceId} (backup of ${backup.createdAt}) under ${absRoot}`);
    console.log(`check it with: pacs-edge check-config --config ${configTarget}`);
    console.log(`audit: ${await auditRestore(configTarget, input, `restored ${targets.length} file(s) from the backup of ${backup.createdAt}`)}`);
    return EXIT.ok;
  } catch (err) {
    console.error(`pacs-edge restore: ${(err as Error).message}`);
    // A crafted backup refused: the box it was aimed at records the attempt (when it has a trail).
    if ((err as PacsEdgeError).code === Code.BACKUP_PATH_REFUSED && configTarget) console.error(`audit: ${await auditRestore(configTarget, input, `restore refused: ${(err as Error).message}`, true)}`);
    return err instanceof BackupError ? EXIT.failed : exitCodeFor(err);
  }
}

/**
 * A backup's device key replaces the one on the box only if every queued object the current
 * key opens is opened by the new one too (restoring the key of this very box, or putting back a
 * lost key, passes; another box's key over a full spool does not).
 */
async function refuseStrandingKey(current: GatewayConfig, targets: readonly (BackupEntry & { target: string })[]): Promise<void> {
  const entry = targets.find((t) => t.role === 'device-key');
  if (!entry) return;
  const profile = sealProfileOf(current.spool.encryption.profile);
  const keyFile = current.spool.encryption.keyFile;
  const now = existsSync(keyFile) ? sealKeyOf(DeviceKey.load(keyFile), profile) : undefined;
  const next = sealKeyOf(DeviceKey.fromBytes(entry.data, entry.target), profile);
  const { opened } = await sealedFilesOpenedBy(current, { now, next });
  const stranded = [...opened.now!].filter((n) => !opened.next!.has(n));
  if (stranded.length > 0) {
    throw new BackupError(
      'INVALID',
      `the backup's device key is not the one in ${keyFile}, and ${stranded.length} queued object(s) in ${current.spool.dir} are sealed with the current key: restoring it would make them unreadable. Let them be delivered first (pacs-edge status: 0 pending), or restore with --root into another directory. Nothing was restored.`,
    );
  }
}

/** Record the restore (or its refusal) in the restored box's audit trail (when there is one): who, which backup, what. */
async function auditRestore(configFile: string, input: string, what: string, failure = false): Promise<string> {
  try {
    const config = loadConfig(configFile);
    if (!existsSync(config.audit.dir) || !existsSync(config.spool.encryption.keyFile)) return 'no audit trail here yet: nothing recorded';
    const key = DeviceKey.load(config.spool.encryption.keyFile);
    actAsStateOwner(config);
    return await recordOffline(config, key, {
      kind: 'security-alert',
      type: 'security-configuration',
      detail: `${path.resolve(input)} by ${safeUser()}: ${what}`,
      failure,
    });
  } catch (err) {
    return `not recorded: ${(err as Error).message}`;
  }
}
