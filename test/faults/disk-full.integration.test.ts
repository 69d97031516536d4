import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { Level } from 'level';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { Status } from '../../src/dicom/status.js';
import { isSealed } from '../../src/security/sealed-file.js';
import { openRecord } from '../../src/spool/record-codec.js';
import type { SpoolRecord } from '../../src/spool/spool.js';
import { datasetBytes, echoscu, startStorescp, storescu, type StorescuResult } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { freePort, type GatewayProcess, nothingPending, startGateway, tempDir, waitFor } from '../helpers/processes.js';
import { skipSuite } from '../helpers/requirements.js';
import { type FaultResult, recordFault } from '../helpers/reliability.js';
import { readSpoolFile } from '../helpers/spool-files.js';
import { freeBytes, missingTmpfs, mountTmpfs, unmountTmpfs } from '../helpers/tmpfs.js';

/**
 * Fault: the spool's file system fills up. The spool lives on a 48 MiB tmpfs mounted for the
 * test (root only); the modality is DCMTK storescu, the PACS DCMTK storescp, started late.
 *
 * Order of the phases (each a check of the brief):
 *   A. a second process fills the volume to the last byte while storescu is sending (the
 *      gateway is still accepting then, so objects in flight meet a real ENOSPC), then the
 *      filler is deleted;
 *   B. storescu sends until spool.minFreeBytes makes the gateway refuse with 0xA700;
 *   C. the PACS comes up: everything acknowledged is delivered, the spool empties, and a new
 *      C-STORE succeeds without a restart.
 * Phase A runs before B because once the guard refuses (B) no object is ever written again
 * until space returns, so a filler racing with storescu could not meet an object in flight.
 * A second gateway on a second volume checks spool.keepForwardedHours eviction.
 */
const MiB = 1024 * 1024;
const VOLUME = '48m';
const MIN_FREE = 8 * MiB;
const FAST = { retryBaseSeconds: 0.2, retryMaxSeconds: 1, idleReleaseSeconds: 1, responseTimeoutSeconds: 10 };

/** Lowest free space seen on a volume, per phase, sampled every 5 ms. */
function freeSampler(dir: string) {
  const lowest = new Map<string, number>();
  let phase = 'start';
  const t = setInterval(() => {
    const f = freeBytes(dir);
    lowest.set(phase, Math.min(lowest.get(phase) ?? Number.POSITIVE_INFINITY, f));
  }, 5);
  return {
    phase: (p: string) => {
      phase = p;
    },
    lowest: (p: string) => lowest.get(p) ?? Number.NaN,
    stop: () => clearInterval(t),
  };
}

/**
 * What the spool holds, from a copy of its index (the running gateway holds the LevelDB lock)
 * taken while nothing is being received, and the files of its objects directory.
 */
async function spoolSnapshot(spoolDir: string, scratch: string, pid: number): Promise<{ records: SpoolRecord[]; files: string[] }> {
  // A delivered object's file goes a moment after its record (once that removal is durable):
  // look again, a few times, until the index and the objects directory agree; a real partial
  // file never goes away by waiting.
  let snap = await copySnapshot(spoolDir, scratch, pid);
  for (let i = 0; i < 10 && snap.files.join() !== snap.records.map((r) => `${r.id}.dcm`).sort().join(); i++) {
    await new Promise((r) => setTimeout(r, 300));
    snap = await copySnapshot(spoolDir, scratch, pid);
  }
  return snap;
}

async function copySnapshot(spoolDir: string, scratch: string, pid: number): Promise<{ records: SpoolRecord[]; files: string[] }> {
  const copy = path.join(scratch, `index-copy-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  // LevelDB changes its files while the gateway writes (log appends, memtable flushes,
  // compactions in a thread of its own): the gateway is stopped (SIGSTOP, every thread) while its
  // index and objects directory are copied and listed, so both are one moment's, then it goes on.
  const index = path.join(spoolDir, 'index');
  let files: string[];
  process.kill(pid, 'SIGSTOP');
  try {
    // SIGSTOP is delivered asynchronously: copy only once every thread is stopped ('T').
    await waitFor(() => /^\d+ \(.*\) T /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')), { what: 'the gateway stopped by SIGSTOP', timeoutMs: 5_000 });
    cpSync(index, copy, { recursive: true });
    files = readdirSync(path.join(spoolDir, 'objects')).sort();
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  rmSync(path.join(copy, 'LOCK'), { force: true });
  const db = new Level<string, string>(copy, { valueEncoding: 'utf8', createIfMissing: false });
  await db.open();
  const records: SpoolRecord[] = [];
  try {
    for await (const v of db.values({ gte: 'o!', lt: 'o!\xff' })) {
      const r = openRecord(v);
      if (!r) throw new Error('a damaged index record');
      records.push(r);
    }
  } finally {
    await db.close();
    rmSync(copy, { recursive: true, force: true });
  }
  return { records, files };
}

/** Every record's file has its size and SHA-256, and the objects directory holds nothing else. */
function verifySpool(spoolDir: string, snap: { records: SpoolRecord[]; files: string[] }): void {
  for (const r of snap.records) {
    const file = path.join(spoolDir, 'objects', `${r.id}.dcm`);
    // Unsealing authenticates every segment and the final one (a torn or cut file throws).
    const bytes = readSpoolFile(file);
    expect(bytes.length, `size of spooled ${r.id}`).toBe(r.size);
    // A sealed object is recorded without a digest (''): its authenticated segments are the check.
    if (r.sha256 === '') expect(isSealed(readFileSync(file)), `spooled ${r.id} without a digest is sealed`).toBe(true);
    else expect(createHash('sha256').update(bytes).digest('hex'), `SHA-256 of spooled ${r.id}`).toBe(r.sha256);
  }
  expect(snap.files, 'objects/ holds exactly the indexed objects (no partial file)').toEqual(snap.records.map((r) => `${r.id}.dcm`).sort());
}

/** UIDs storescu got Success for (its message ids count its files from 1). */
const ackedUids = (r: StorescuResult, files: { uid: string }[]): string[] => r.acked.map((m) => files[m - 1]!.uid);
const refusedCount = (r: StorescuResult): number => [...r.statuses.values()].filter((s) => s !== Status.Success.code).length;

/**
 * A process other than the gateway that writes a file on the volume until ENOSPC, down to
 * single bytes. It is started ahead and fills when `go()` is called, so that the filling
 * starts within a millisecond, while storescu is still sending.
 */
function spawnFiller(file: string): { go: () => Promise<{ bytes: number; code: string }> } {
  const script = `
    const fs = require('fs');
    process.stdin.once('data', () => {
      const fd = fs.openSync(process.argv[1], 'w');
      let bytes = 0, code = '';
      for (const size of [1 << 20, 65536, 4096, 512, 1]) {
        const buf = Buffer.alloc(size, 0xee);
        for (;;) {
          try { bytes += fs.writeSync(fd, buf); } catch (e) { code = e.code; if (e.code === 'ENOSPC') break; throw e; }
        }
      }
      fs.closeSync(fd);
      process.stdout.write(JSON.stringify({ bytes, code }));
      process.exit(0);
    });
  `;
  const p = spawn(process.execPath, ['-e', script, file], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const t = setTimeout(() => p.kill('SIGKILL'), 60_000);
  const done = new Promise<{ bytes: number; code: string }>((resolve, reject) => {
    p.on('close', (code) => {
      clearTimeout(t);
      if (code === 0) resolve(JSON.parse(out) as { bytes: number; code: string });
      else reject(new Error(`filler failed (${code}): ${err}`));
    });
  });
  return {
    go: () => {
      p.stdin.end('go\n');
      return done;
    },
  };
}

describe.skipIf(skipSuite('the disk-full fault test', missingTmpfs()))('fault: the spool volume fills up (48 MiB tmpfs)', () => {
  const tmp = tempDir('pacs-edge-diskfull-');
  const vol = path.join(tmp.dir, 'vol');
  const vol2 = path.join(tmp.dir, 'vol2');
  const src = path.join(tmp.dir, 'src');
  const pacsDir = path.join(tmp.dir, 'pacs');
  const mounted: string[] = [];
  let batches = 0;
  /** writeStudy names its files img0000…: every batch gets its own directory. */
  const newStudy = (count: number, opts: { rows?: number; cols?: number } = {}) => {
    const dir = path.join(src, `batch-${++batches}`);
    mkdirSync(dir);
    return writeStudy(dir, count, opts);
  };
  let gw: GatewayProcess | undefined;
  /** The reliability row: written once both tests have added what they measured. */
  let row: FaultResult | undefined;
  let pacs: Awaited<ReturnType<typeof startStorescp>> | undefined;

  beforeAll(() => {
    mkdirSync(src);
    mkdirSync(pacsDir);
    mountTmpfs(vol, VOLUME);
    mounted.push(vol);
  });

  afterAll(async () => {
    if (row) recordFault(row);
    await gw?.stop();
    await pacs?.stop();
    for (const m of mounted) unmountTmpfs(m);
    tmp.cleanup();
  });

  it('refuses with 0xA700, keeps serving, loses nothing acknowledged, and resumes by itself once space returns', async () => {
    const pacsPort = await freePort();
    gw = await startGateway({
      dir: vol,
      spool: { minFreeBytes: MIN_FREE, compressAtRest: false, keepForwardedHours: 0 },
      // The audit trail lives off the volume: this test is about the spool. With the trail on a
      // full volume the gateway refuses associations instead (audit.onFailure: refuse), which is
      // test/audit/audit-failure.integration.test.ts.
      config: { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: pacsPort, compression: 'none', associations: 1 }], forwarding: FAST, audit: { dir: path.join(tmp.dir, 'audit-1') } },
    });
    const g = gw;
    const spoolDir = g.spoolDir;
    const sampler = freeSampler(vol);
    const sent = new Map<string, string>(); // UID → source file, everything ever offered
    const acknowledged = new Set<string>();
    let refused = 0;
    let recoverySeconds = 0;
    const notes: string[] = [];
    try {
      // ---- A: a second process fills the volume to the last byte while storescu sends ------
      sampler.phase('A');
      const big = newStudy(40, { rows: 1024, cols: 512 }); // 1 MiB each
      for (const f of big) sent.set(f.uid, f.file);
      const filler = path.join(vol, 'filler.bin');
      const fillerProc = spawnFiller(filler);
      const storedBefore = g.logs.filter((l) => l.msg === 'stored').length;
      const sending = storescu({ port: g.port, files: big.map((f) => f.file), extraArgs: ['-nh'], timeoutMs: 60_000 });
      await g.waitForLog(() => g.logs.filter((l) => l.msg === 'stored').length >= storedBefore + 5, 30_000);
      const filled = await fillerProc.go();
      expect(filled.code, 'the filler wrote down to single bytes until ENOSPC: the volume was full to the last byte').toBe('ENOSPC');
      const a = await sending;
      for (const u of ackedUids(a, big)) acknowledged.add(u);
      refused += refusedCount(a);
      const aStatuses = [...a.statuses.values()];
      expect(aStatuses.length, 'storescu got an answer for every object').toBe(big.length);
      expect(aStatuses.every((s) => s === Status.Success.code || s === Status.OutOfResources.code), 'only Success or 0xA700').toBe(true);
      expect(a.acked.length).toBeGreaterThanOrEqual(5);
      expect(refusedCount(a), 'objects that arrived after the volume filled were refused').toBeGreaterThan(0);
      // While the volume is full: C-ECHO is answered, and a C-STORE is refused (not Success).
      expect((await echoscu(g.port)).code).toBe(0);
      const whileFull = newStudy(2);
      for (const f of whileFull) sent.set(f.uid, f.file);
      const wf = await storescu({ port: g.port, files: whileFull.map((f) => f.file), extraArgs: ['-nh'] });
      expect(wf.acked, 'nothing acknowledged on a full volume').toEqual([]);
      expect([...wf.statuses.values()]).toEqual([Status.OutOfResources.code, Status.OutOfResources.code]);
      refused += refusedCount(wf);
      // Every refusal is logged with why; refusals that met ENOSPC while writing say so.
      // The log line is written before the response goes out, but reaches us through a pipe.
      const refusalLines = () => g.logs.filter((l) => l.msg === 'C-STORE refused: Refused: Out of Resources');
      await g.waitForLog(() => refusalLines().length >= refused, 5_000).catch(() => undefined);
      const refusals = refusalLines();
      expect(refusals.length).toBe(refused);
      expect(refusals.every((l) => l.reason === 'spool out of space' && typeof l.detail === 'string' && l.detail.length > 0)).toBe(true);
      const enospc = refusals.filter((l) => l.error === 'ENOSPC' || /no space left/i.test(String(l.detail))).length;
      const guarded = refusals.filter((l) => l.error === 'SPOOL_FULL').length;
      notes.push(`phase A: ${a.acked.length} acked, ${refusedCount(a) + refusedCount(wf)} refused (${enospc} met ENOSPC while writing/indexing, ${guarded} by the free-space check)`);
      // Nothing partial stays behind, and everything acknowledged is intact.
      await new Promise((r) => setTimeout(r, 300));
      let snap = await spoolSnapshot(spoolDir, tmp.dir, g.proc.pid!);
      verifySpool(spoolDir, snap);
      expect(new Set(snap.records.map((r) => r.sopInstanceUid))).toEqual(acknowledged);
      // Space is given back: the gateway takes objects again without a restart.
      rmSync(filler);
      const freedAt = Date.now();
      let probe = 0;
      const resumed = await waitFor(async () => {
        const one = newStudy(1);
        sent.set(one[0]!.uid, one[0]!.file);
        probe++;
        const r = await storescu({ port: g.port, files: [one[0]!.file] });
        refused += refusedCount(r);
        if (r.acked.length === 1) {
          acknowledged.add(one[0]!.uid);
          return true;
        }
        return undefined;
      }, { what: 'a C-STORE to succeed after the filler was deleted', timeoutMs: 20_000, intervalMs: 100 });
      expect(resumed).toBe(true);
      recoverySeconds = Math.max(recoverySeconds, (Date.now() - freedAt) / 1000);
      notes.push(`filler deleted → Success after ${probe} attempt(s)`);

      // ---- B: storescu sends until spool.minFreeBytes makes the gateway refuse with 0xA700 --
      sampler.phase('B');
      const study = newStudy(100, { rows: 512, cols: 512 }); // 512 KiB each
      for (const f of study) sent.set(f.uid, f.file);
      const b = await storescu({ port: g.port, files: study.map((f) => f.file), extraArgs: ['-nh'], timeoutMs: 60_000 });
      for (const u of ackedUids(b, study)) acknowledged.add(u);
      refused += refusedCount(b);
      const firstRefused = [...b.statuses.entries()].find(([, s]) => s !== Status.Success.code);
      expect(firstRefused, 'the gateway refused once the volume reached spool.minFreeBytes').toBeDefined();
      expect(firstRefused![1]).toBe(Status.OutOfResources.code);
      expect(b.responses.get(firstRefused![0])).toMatch(/Out ?of ?Resources/i);
      // Every object after the first refusal was refused too (nothing frees space meanwhile).
      expect([...b.statuses.entries()].filter(([m]) => m >= firstRefused![0]).every(([, s]) => s === Status.OutOfResources.code)).toBe(true);
      expect(b.statuses.size).toBe(study.length);
      const minFreeLine = await g.waitForLog((l) => l.msg === 'C-STORE refused: Refused: Out of Resources' && l.error === 'SPOOL_FULL' && /below spool\.minFreeBytes/.test(String(l.detail)));
      expect(String(minFreeLine.status).toLowerCase()).toBe('0xa700');
      expect(sampler.lowest('B'), 'free space never reached 0 while the gateway guarded it').toBeGreaterThan(0);
      expect((await echoscu(g.port)).code, 'C-ECHO answered while refusing').toBe(0);
      await new Promise((r) => setTimeout(r, 300));
      snap = await spoolSnapshot(spoolDir, tmp.dir, g.proc.pid!);
      verifySpool(spoolDir, snap);
      expect(new Set(snap.records.map((r) => r.sopInstanceUid)), 'objects/ holds exactly the acknowledged objects').toEqual(acknowledged);
      notes.push(`phase B: ${b.acked.length} acked then 0xA700 at ${(freeBytes(vol) / MiB).toFixed(1)} MiB free (min ${MIN_FREE / MiB} MiB), lowest free ${(sampler.lowest('B') / MiB).toFixed(1)} MiB`);

      // ---- C: the PACS comes up; everything acknowledged goes, space returns, ingest resumes --
      sampler.phase('C');
      const spooledBytes = snap.records.reduce((n, r) => n + r.size, 0);
      pacs = await startStorescp(pacsDir, 'PACS', { port: pacsPort, uniqueFilenames: true });
      const pacsUpAt = Date.now();
      let cProbes = 0;
      let cRefused = 0;
      await waitFor(async () => {
        const one = newStudy(1);
        sent.set(one[0]!.uid, one[0]!.file);
        cProbes++;
        const r = await storescu({ port: g.port, files: [one[0]!.file] });
        cRefused += refusedCount(r);
        if (r.acked.length === 1) {
          acknowledged.add(one[0]!.uid);
          return true;
        }
        return undefined;
      }, { what: 'ingest to resume once the PACS drains the spool', timeoutMs: 40_000, intervalMs: 200 });
      refused += cRefused;
      recoverySeconds = Math.max(recoverySeconds, (Date.now() - pacsUpAt) / 1000);
      notes.push(`PACS up → Success after ${cProbes} attempt(s) (${cRefused} refused meanwhile)`);
      await waitFor(() => nothingPending(spoolDir), { what: 'everything delivered', timeoutMs: 40_000 });
      // Delivered objects leave the spool (keepForwardedHours 0): files go once their removal is durable.
      await waitFor(() => readdirSync(path.join(spoolDir, 'objects')).length === 0 || undefined, { what: 'the spool files to be deleted', timeoutMs: 10_000 });
      const freeAfter = freeBytes(vol);
      expect(freeAfter, 'the space of the delivered objects came back').toBeGreaterThan(MIN_FREE + spooledBytes * 0.9);

      // Compare what the PACS holds with what was acknowledged (storescp +uf: one file per reception).
      const atPacs = new Map<string, Buffer[]>();
      for (const n of readdirSync(pacsDir).filter((x) => x.endsWith('.dcm'))) {
        const buf = readFileSync(path.join(pacsDir, n));
        const uid = readPart10Header(buf)!.sopInstanceUid;
        atPacs.set(uid, [...(atPacs.get(uid) ?? []), buf]);
      }
      let lost = 0;
      let duplicated = 0;
      for (const uid of acknowledged) {
        const copies = atPacs.get(uid) ?? [];
        const expected = datasetBytes(sent.get(uid)!);
        if (!copies.some((c) => datasetBytes(c).equals(expected))) lost++;
        if (copies.length > 1) duplicated += copies.length - 1;
      }
      const refusedAtPacs = [...atPacs.keys()].filter((u) => !acknowledged.has(u));
      expect(lost, 'acknowledged objects missing or different at the PACS').toBe(0);
      expect(refusedAtPacs, 'refused objects never reach the PACS').toEqual([]);
      expect(g.output()).not.toContain('Test^Fixture');
      expect(g.proc.exitCode, 'the gateway ran throughout').toBeNull();

      row = {
        key: '03-disk-full',
        fault: `Spool volume full (${VOLUME.replace('m', ' MiB')} tmpfs)`,
        test: 'test/faults/disk-full.integration.test.ts',
        injected: refused,
        acknowledged: acknowledged.size,
        lost,
        duplicated,
        recoverySeconds: Math.round(recoverySeconds * 10) / 10,
        notes: `${notes.join('; ')}; every refusal logged with its reason; C-ECHO answered while full; no partial file, every spooled object's size and SHA-256 verified; all acknowledged data sets byte-identical at the PACS; free space after draining ${(freeAfter / MiB).toFixed(1)} MiB`,
      };
    } finally {
      sampler.stop();
      await g.stop();
      gw = undefined;
      await pacs?.stop();
      pacs = undefined;
    }
  }, 110_000);

  it('with spool.keepForwardedHours, a full volume evicts delivered objects first and never an unsent one', async () => {
    mountTmpfs(vol2, VOLUME);
    mounted.push(vol2);
    const pacs2Dir = path.join(tmp.dir, 'pacs2');
    mkdirSync(pacs2Dir);
    const scp = await startStorescp(pacs2Dir, 'PACS');
    let scpStopped: Promise<void> | undefined;
    const stopScp = () => (scpStopped ??= scp.stop());
    const g = await startGateway({
      dir: vol2,
      spool: { minFreeBytes: MIN_FREE, compressAtRest: false, keepForwardedHours: 1 },
      config: { forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: scp.port, compression: 'none', associations: 1 }], forwarding: FAST, audit: { dir: path.join(tmp.dir, 'audit-2') } },
    });
    try {
      // 20 MiB delivered and kept.
      const delivered = newStudy(40, { rows: 512, cols: 512 });
      const d = await storescu({ port: g.port, files: delivered.map((f) => f.file), extraArgs: ['-nh'] });
      expect(d.acked).toHaveLength(40);
      await waitFor(() => nothingPending(g.spoolDir), { what: 'the first study delivered', timeoutMs: 30_000 });
      await new Promise((r) => setTimeout(r, 300));
      let snap = await spoolSnapshot(g.spoolDir, tmp.dir, g.proc.pid!);
      expect(snap.records).toHaveLength(40);
      expect(snap.records.every((r) => r.pending.length === 0 && typeof r.forwardedAt === 'number'), 'delivered objects are kept').toBe(true);
      const keptIds = new Set(snap.records.map((r) => r.id));
      // The PACS goes away; 50 MiB more arrive: more than the volume holds beside the kept ones.
      await stopScp();
      const unsent = newStudy(100, { rows: 512, cols: 512 });
      const u = await storescu({ port: g.port, files: unsent.map((f) => f.file), extraArgs: ['-nh'], timeoutMs: 60_000 });
      const statuses = [...u.statuses.entries()].sort(([a], [b]) => a - b).map(([, st]) => st);
      expect(statuses).toHaveLength(100);
      const eviction = await g.waitForLog((l) => l.msg === 'spool short of space: removed delivered objects kept by spool.keepForwardedHours');
      expect(eviction.evicted).toBe(40);
      const firstRefusal = statuses.findIndex((st) => st !== Status.Success.code);
      expect(firstRefusal, 'eventually refused: the unsent objects fill the volume').toBeGreaterThan(0);
      // Eviction makes room before a modality is refused: no object was refused while delivered
      // objects could still give way, so the statuses are Success…Success, then 0xA700…0xA700.
      expect(statuses.slice(firstRefusal).every((st) => st === Status.OutOfResources.code), `statuses in order: ${statuses.map((st) => (st === 0 ? 'S' : 'R')).join('')}`).toBe(true);
      const evictedAt = Date.parse(String(eviction.time));
      const firstRefusalLine = g.logs.find((l) => l.msg === 'C-STORE refused: Refused: Out of Resources')!;
      expect(Date.parse(String(firstRefusalLine.time)), 'the first refusal came after the eviction').toBeGreaterThanOrEqual(evictedAt);
      expect(u.acked.length, 'the evicted space was used for new objects').toBeGreaterThan(40);
      await new Promise((r) => setTimeout(r, 1500)); // evicted files go after their removal is durable (≤ 1 s)
      snap = await spoolSnapshot(g.spoolDir, tmp.dir, g.proc.pid!);
      verifySpool(g.spoolDir, snap);
      expect(snap.records.filter((r) => keptIds.has(r.id)), 'every delivered object was evicted').toEqual([]);
      expect(new Set(snap.records.map((r) => r.sopInstanceUid)), 'every unsent acknowledged object is still spooled').toEqual(new Set(ackedUids(u, unsent)));
      expect(snap.records.every((r) => r.pending.includes('pacs'))).toBe(true);
      expect(freeBytes(vol2)).toBeGreaterThan(0);
      if (row) row.notes += `; keepForwardedHours 1: ${eviction.evicted as number} delivered objects evicted when the volume ran short, then ${u.acked.length} of ${unsent.length} unsent ones acknowledged before 0xA700, none of them ever evicted`;
    } finally {
      await g.stop();
      await stopScp();
    }
  }, 60_000);
});
