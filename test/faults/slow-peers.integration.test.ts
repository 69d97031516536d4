import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeCommand } from '../../src/dicom/command.js';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { PduType } from '../../src/dicom/pdu.js';
import { encodePData } from '../../src/dicom/ul/pdv.js';
import { Tag } from '../../src/dicom/tags.js';
import { controlGet } from '../../src/health/control-server.js';
import { datasetBytes, echoscu, storescu } from '../helpers/dcmtk.js';
import { CT_IMAGE_STORAGE, ctElements, encodeDataset, ExplicitLE, testUid, writeStudy } from '../helpers/dicom-builder.js';
import { type GatewayProcess, startGateway, tempDir, waitFor } from '../helpers/processes.js';
import { associateRq } from '../helpers/raw-scu.js';
import { recordFault } from '../helpers/reliability.js';
import { readSpoolFile } from '../helpers/spool-files.js';

/**
 * Fault: 50 bad peers at once, each holding its socket open (none of them closes it): TCP only,
 * half an A-ASSOCIATE-RQ, associated and silent, a data set trickled one byte a second, stopped
 * in the middle of an object, and TCP half-closed without a PDU. No real DICOM peer does these
 * on purpose, so they are raw sockets; the good peers are DCMTK echoscu and storescu.
 *
 * Limits: receive.maxAssociations 20 (associations; silent connections have their own budget), ARTIM 2 s, idle
 * 3 s. The 50 exceed the limit, so the good peers are refused (A-ASSOCIATE-RJ transient, which
 * is right) until the timers have dropped the bad ones; they must be served while the slowest
 * bad peers still hold their sockets, and again once every bad peer is gone.
 */
const MAX_ASSOCIATIONS = 20;
const ARTIM_S = 2;
const IDLE_S = 3;
const BAD_PEERS = 50;
const KINDS = ['tcp-silent', 'half-rq', 'assoc-silent', 'trickle', 'mid-object', 'half-close'] as const;
type Kind = (typeof KINDS)[number];

interface BadPeer {
  kind: Kind;
  socket: net.Socket;
  /** When it last sent a byte (the connection itself counts). */
  lastByteAt: number;
  closedAt?: number;
  gotAc: boolean;
  gotRj: boolean;
  timer?: NodeJS.Timeout;
}

const CONTEXT = { id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: ['1.2.840.10008.1.2.1'] };

/** A C-STORE-RQ command PDU and the data set PDUs of a small CT object. */
function storePdus(): { command: Buffer; data: Buffer } {
  const uid = testUid('slow');
  const cmd = encodeCommand([
    { tag: Tag.AffectedSopClassUid, vr: 'UI', value: CT_IMAGE_STORAGE },
    { tag: Tag.CommandField, vr: 'US', value: 0x0001 },
    { tag: Tag.MessageId, vr: 'US', value: 1 },
    { tag: Tag.Priority, vr: 'US', value: 0 },
    { tag: Tag.CommandDataSetType, vr: 'US', value: 0 },
    { tag: Tag.AffectedSopInstanceUid, vr: 'UI', value: uid },
  ]);
  const dataset = encodeDataset(ctElements({ sopInstanceUid: uid, rows: 64, cols: 64 }), ExplicitLE);
  return { command: Buffer.concat(encodePData(1, true, cmd, 16384)), data: Buffer.concat(encodePData(1, false, dataset, 4096)) };
}

function openBadPeer(port: number, kind: Kind): Promise<BadPeer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    // Never closes its side by itself: the gateway must.
    socket.setNoDelay(true);
    const peer: BadPeer = { kind, socket, lastByteAt: Date.now(), gotAc: false, gotRj: false };
    const send = (b: Buffer) => {
      if (socket.destroyed || peer.closedAt) return;
      socket.write(b);
      peer.lastByteAt = Date.now();
    };
    const closed = () => {
      peer.closedAt ??= Date.now();
      clearInterval(peer.timer);
    };
    socket.on('end', closed);
    socket.on('close', closed);
    socket.on('error', () => undefined);
    let afterAc: (() => void) | undefined;
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 6) return;
      if (buf[0] === PduType.AssociateAc && !peer.gotAc) {
        peer.gotAc = true;
        afterAc?.();
      } else if (buf[0] === PduType.AssociateRj) peer.gotRj = true;
    });
    socket.once('connect', () => {
      peer.lastByteAt = Date.now();
      const rq = associateRq({ callingAe: 'BADPEER', contexts: [CONTEXT] });
      const { command, data } = storePdus();
      switch (kind) {
        case 'tcp-silent':
          break;
        case 'half-rq':
          send(rq.subarray(0, Math.floor(rq.length / 2)));
          break;
        case 'assoc-silent':
          send(rq);
          break;
        case 'trickle': {
          send(rq);
          afterAc = () => {
            send(command);
            let i = 0;
            peer.timer = setInterval(() => {
              if (i < data.length) send(data.subarray(i, ++i));
            }, 1000);
          };
          break;
        }
        case 'mid-object':
          send(rq);
          afterAc = () => send(Buffer.concat([command, data.subarray(0, Math.floor(data.length / 2))]));
          break;
        case 'half-close':
          socket.end();
          peer.lastByteAt = Date.now();
          break;
      }
      resolve(peer);
    });
    socket.once('error', reject);
  });
}

const rssBytes = (pid: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
};

describe('fault: 50 slow or half-open associations at once', () => {
  it('drops every bad peer by its timer, keeps the association limit, and serves the good peers', async () => {
    const tmp = tempDir('pacs-edge-slowpeers-');
    const gw: GatewayProcess = await startGateway({
      dir: tmp.dir,
      receive: { maxAssociations: MAX_ASSOCIATIONS, artimTimeoutSeconds: ARTIM_S, idleTimeoutSeconds: IDLE_S },
      // Kept as received, so that each acknowledged object can be compared with what was sent, byte for byte.
      spool: { compressAtRest: false },
    });
    const peers: BadPeer[] = [];
    let maxActive = 0;
    let maxRss = rssBytes(gw.proc.pid!);
    let maxOpenAccepted = 0;
    let polling = true;
    // The limit, as the gateway reports it (control socket /status) and as the peers see it.
    const poller = (async () => {
      while (polling) {
        const s = (await controlGet(path.join(gw.spoolDir, 'control.sock'), '/status').catch(() => undefined)) as { receive: { activeAssociations: number } } | undefined;
        if (s) maxActive = Math.max(maxActive, s.receive.activeAssociations);
        maxRss = Math.max(maxRss, rssBytes(gw.proc.pid!));
        maxOpenAccepted = Math.max(maxOpenAccepted, peers.filter((p) => p.gotAc && !p.closedAt).length);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const good = { echoOk: 0, echoRefused: 0, storeAcked: 0, storeRefused: 0, servedWhileBadOpen: 0 };
    /** The files a good peer saw acknowledged: each must be in the spool, unchanged. */
    const acknowledged: { file: string; uid: string }[] = [];
    try {
      const started = Date.now();
      peers.push(...(await Promise.all(Array.from({ length: BAD_PEERS }, (_, i) => openBadPeer(gw.port, KINDS[i % KINDS.length]!)))));

      // Good peers keep trying (bounded) while the bad ones hold their sockets.
      const stillOpen = () => peers.filter((p) => !p.closedAt).length;
      let echoServed = false;
      for (let attempt = 0; attempt < 60 && !echoServed; attempt++) {
        const r = await echoscu(gw.port);
        if (r.code === 0) {
          echoServed = true;
          good.echoOk++;
          if (stillOpen() > 0) good.servedWhileBadOpen++;
        } else {
          good.echoRefused++;
          expect(r.stdout + r.stderr, 'a good peer is only ever refused for the limit').toMatch(/Local Limit Exceeded|Rejected Transient|Association Rejected/i);
          await new Promise((res) => setTimeout(res, 100));
        }
      }
      expect(echoServed, 'C-ECHO served once the timers freed a slot').toBe(true);
      const study = writeStudy(tmp.dir, 3);
      let storeServed = false;
      for (let attempt = 0; attempt < 60 && !storeServed; attempt++) {
        const r = await storescu({ port: gw.port, files: study.map((f) => f.file), timeoutMs: 20_000 });
        if (r.acked.length === 3) {
          storeServed = true;
          good.storeAcked += 3;
          acknowledged.push(...study);
          if (stillOpen() > 0) good.servedWhileBadOpen++;
        } else {
          expect(r.acked, 'a refused association stores nothing').toEqual([]);
          good.storeRefused++;
          await new Promise((res) => setTimeout(res, 100));
        }
      }
      expect(storeServed, 'storescu served').toBe(true);
      expect(good.servedWhileBadOpen, 'good peers were served while bad peers still held their sockets').toBeGreaterThan(0);

      // Every bad peer is closed by the gateway (none of them closes by itself).
      await waitFor(() => peers.every((p) => p.closedAt) || undefined, { what: 'every bad peer closed by the gateway', timeoutMs: 30_000 });
      const closeDelays = peers.map((p) => (p.closedAt! - p.lastByteAt) / 1000);
      const byKind = Object.fromEntries(KINDS.map((k) => [k, Math.max(...peers.filter((p) => p.kind === k).map((p) => (p.closedAt! - p.lastByteAt) / 1000))]));
      const trickled = peers.filter((p) => p.kind === 'trickle' && p.gotAc);
      expect(trickled.length, 'some trickling peers got an association').toBeGreaterThan(0);

      // A good storescu after all that.
      // A directory of its own: writeStudy names files img0000.dcm, … and the first study's must stay.
      const after = writeStudy(mkdirSync(path.join(tmp.dir, 'after'), { recursive: true })!, 2);
      const last = await storescu({ port: gw.port, files: after.map((f) => f.file) });
      expect(last.acked).toEqual([1, 2]);
      good.storeAcked += 2;
      acknowledged.push(...after);
      polling = false;
      await poller;

      // The limit held.
      expect(maxActive, 'activeAssociations in /status').toBeLessThanOrEqual(MAX_ASSOCIATIONS);
      expect(maxOpenAccepted, 'bad peers holding an accepted association at once').toBeLessThanOrEqual(MAX_ASSOCIATIONS);
      const status = (await controlGet(path.join(gw.spoolDir, 'control.sock'), '/status')) as { receive: { activeAssociations: number; objectsStored: number; associationsRejected: number }; spool: { objects: number } };
      expect(status.receive.activeAssociations, 'every association left the count').toBe(0);
      // Lost, counted from the spool's files, not from its own count: each acknowledged object
      // must be there with the data set that was sent.
      const spooled = new Map<string, Buffer>();
      for (const n of readdirSync(path.join(gw.spoolDir, 'objects')).filter((f) => f.endsWith('.dcm'))) {
        const bytes = readSpoolFile(path.join(gw.spoolDir, 'objects', n));
        const h = readPart10Header(bytes);
        if (h) spooled.set(h.sopInstanceUid, datasetBytes(bytes));
      }
      const lostFiles = acknowledged.filter((a) => !spooled.get(a.uid)?.equals(datasetBytes(a.file))).map((a) => path.basename(a.file));
      // The row is recorded with what was counted, before any assertion on it: a run that loses an
      // object leaves a row saying how many (and the report refuses to be written), not no row.
      const recoverySeconds = Math.max(...closeDelays);
      recordFault({
        key: '06-slow-peers',
        fault: '50 slow or half-open associations at once',
        test: 'test/faults/slow-peers.integration.test.ts',
        injected: BAD_PEERS,
        acknowledged: good.storeAcked,
        lost: lostFiles.length,
        duplicated: 0,
        recoverySeconds: Math.round(recoverySeconds * 10) / 10,
        notes:
          `maxAssociations ${MAX_ASSOCIATIONS}, ARTIM ${ARTIM_S} s, idle ${IDLE_S} s; ${peers.filter((p) => p.gotAc).length} bad peers associated, ${peers.filter((p) => p.gotRj).length} got A-ASSOCIATE-RJ; ` +
          `all 50 closed by the gateway (longest after last byte, by kind: ${Object.entries(byKind).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ')}); ` +
          `good peers: ${good.echoRefused + good.storeRefused} refused transiently, then served while bad peers were still open; ` +
          `peak activeAssociations ${maxActive}, peak RSS ${(maxRss / 1024 / 1024).toFixed(0)} MiB; no partial object left; everything over in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      });
      expect(acknowledged.length, 'acknowledged objects tracked').toBe(good.storeAcked);
      expect(lostFiles, 'acknowledged objects missing from the spool or different').toEqual([]);
      // Partial objects were discarded: the spool holds exactly the good objects, no stray file.
      expect(status.spool.objects).toBe(good.storeAcked);
      await waitFor(() => readdirSync(path.join(gw.spoolDir, 'objects')).length === good.storeAcked || undefined, { what: 'only the good objects in objects/', timeoutMs: 5000 });
      const stored = gw.logs.filter((l) => l.msg === 'stored');
      expect(stored.every((l) => l.callingAe === 'STORESCU')).toBe(true);
      // The gateway said why it closed each kind.
      const said = (re: RegExp) => gw.logs.filter((l) => re.test(l.msg)).length;
      expect(said(/no A-ASSOCIATE-RQ within ARTIM timeout/)).toBeGreaterThan(0);
      expect(said(/association closed: idle timeout/)).toBeGreaterThan(0);
      expect(said(/partial object discarded/)).toBeGreaterThanOrEqual(peers.filter((p) => (p.kind === 'trickle' || p.kind === 'mid-object') && p.gotAc).length);
      expect(said(/receive\.maxAssociations reached/)).toBeGreaterThan(0);
      expect(maxRss, 'gateway RSS').toBeLessThan(300 * 1024 * 1024);
      expect(gw.output()).not.toContain('Test^Fixture');
    } finally {
      polling = false;
      await poller;
      for (const p of peers) {
        clearInterval(p.timer);
        p.socket.destroy();
      }
      await gw.stop();
      tmp.cleanup();
    }
  }, 90_000);
});
