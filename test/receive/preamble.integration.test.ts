import { existsSync, mkdirSync, openSync, readdirSync, readSync, closeSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceKey } from '../../src/security/device-key.js';
import { sealKeyOf } from '../../src/security/spool-key.js';
import { LevelSpool } from '../../src/spool/level-spool.js';
import { isSealed, type SealKey } from '../../src/security/sealed-file.js';
import { HashPool } from '../../src/spool/hash-pool.js';
import { datasetBytes, startStorescp, storescu } from '../helpers/dcmtk.js';
import { ctFile } from '../helpers/dicom-builder.js';
import { nothingPending, startGateway, tempDir, waitFor } from '../helpers/processes.js';
import { readAll } from '../spool/conformance.js';

/**
 * CVE-2019-11687: a DICOM file's 128-byte preamble is free for the application, so a file can be
 * a valid DICOM object and a Windows executable at once (a PE/DICOM polyglot). The gateway never
 * keeps a sender's preamble: storescu sends the data set only (the preamble never crosses the
 * network), the spool file gets a header the gateway builds with 128 zero bytes, and the
 * forwarder sends from the data set on (src/forward/scu.ts streamDataSet).
 */
describe('preamble of stored and forwarded objects', () => {
  const tmp = tempDir('pacs-edge-preamble-');
  const inDir = path.join(tmp.dir, 'in');
  const pacsDir = path.join(tmp.dir, 'pacs');
  const polyglot = ctFile({ rows: 8, cols: 8 });
  const file = path.join(inDir, 'polyglot.dcm');

  beforeAll(() => {
    mkdirSync(inDir);
    mkdirSync(pacsDir);
    // "MZ", a DOS stub and junk, as a PE/DICOM polyglot carries in its preamble.
    const preamble = Buffer.alloc(128);
    Buffer.from('MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00This program cannot be run in DOS mode.\r\r\n$', 'latin1').copy(preamble);
    for (let i = 80; i < 128; i++) preamble[i] = (i * 37) & 0xff;
    preamble.copy(polyglot.bytes, 0);
    writeFileSync(file, polyglot.bytes);
  });
  afterAll(() => tmp.cleanup());

  it('a file with an executable-looking preamble is stored with 128 zero bytes, and forwarded without it', async () => {
    expect(polyglot.bytes.subarray(0, 2).toString('latin1')).toBe('MZ');
    const pacs = await startStorescp(pacsDir, 'STORESCP', { syntaxes: [] });
    const spoolDir = path.join(tmp.dir, 'state', 'spool');
    try {
      const gw = await startGateway({
        dir: tmp.dir,
        spool: { dir: spoolDir, keepForwardedHours: 1, compressAtRest: false },
        config: { forward: [{ name: 'pacs', aeTitle: 'STORESCP', host: '127.0.0.1', port: pacs.port, compression: 'none', associations: 1 }] },
      });
      try {
        const sent = await storescu({ port: gw.port, files: [file], timeoutMs: 30_000 });
        expect(sent.acked, sent.stdout + sent.stderr).toEqual([1]);
        await waitFor(() => nothingPending(spoolDir), { timeoutMs: 30_000, what: 'the object forwarded' });
      } finally {
        expect(await gw.stop()).toBe(0);
      }

      // Through the spool's reader (spool files may be encrypted on disk), as the forwarder reads them.
      const keyFile = path.join(tmp.dir, 'state', 'keys', 'device.key');
      // The same key the gateway uses for spool.encryption.profile aes-256-gcm (the default; src/gateway.ts spoolKey).
      const seal: SealKey | undefined = existsSync(keyFile) ? sealKeyOf(DeviceKey.load(keyFile), 'aes-256-gcm') : undefined;
      const pool = new HashPool(1, seal);
      const spool = new LevelSpool({ dir: spoolDir, destinations: ['pacs'], minFreeBytes: 0, maxBytes: 0, verifyOnStart: 'size', hashPool: pool, log: pino({ level: 'silent' }), seal });
      await spool.open();
      try {
        const rec = await spool.find(polyglot.sopInstanceUid);
        expect(rec, 'the object is in the spool (kept after forwarding)').toBeDefined();
        // The file on disk is encrypted (default spool.encryption.profile): its bytes say nothing
        // about the preamble, which is why the check reads through the spool.
        const fd = openSync(spool.filePath(rec!.id), 'r');
        const head = Buffer.alloc(4);
        readSync(fd, head, 0, 4, 0);
        closeSync(fd);
        expect(isSealed(head), 'spool file sealed').toBe(seal !== undefined);
        const stored = await readAll(await spool.read(rec!.id));
        expect(stored.subarray(0, 128).equals(Buffer.alloc(128)), 'stored preamble is 128 zero bytes').toBe(true);
        expect(stored.toString('latin1', 128, 132)).toBe('DICM');
        expect(datasetBytes(stored).equals(datasetBytes(polyglot.bytes)), 'data set byte for byte').toBe(true);
      } finally {
        await spool.close();
        await pool.close();
      }

      // What the PACS received (storescp +B writes its own header before the bytes it got): the
      // same data set, so no preamble byte was sent inside it.
      const received = readdirSync(pacsDir).filter((n) => n.endsWith('.dcm'));
      expect(received).toHaveLength(1);
      expect(datasetBytes(path.join(pacsDir, received[0]!)).equals(datasetBytes(polyglot.bytes))).toBe(true);
    } finally {
      await pacs.stop();
    }
  });
});
