import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { echoscu, storescu } from '../helpers/dcmtk.js';
import { writeStudy } from '../helpers/dicom-builder.js';
import { freePort, ROOT, run, runGateway, tempDir, writeGatewayConfig } from '../helpers/processes.js';
import { missingTools, skipSuite } from '../helpers/requirements.js';

/**
 * Issue 14: the read-only status page (`health.web`), rendered by a real headless Chromium
 * (Debian's `chromium`): destinations, queue, disk, recent studies with their state per
 * destination, refused associations, certificates. No patient data. The screenshot is kept in
 * .tmp/status-page.png (docs/status-page.png is a copy of one). A password, when set, is asked for.
 */

const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--hide-scrollbars'];

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe.skipIf(skipSuite('the status page test', missingTools({ chromium: 'apt-get install chromium; make deps installs it' })))('the status page for site IT', () => {
  it('renders in headless Chromium with destinations, queue, disk, studies, refused associations and certificates; no patient data', { timeout: 120_000 }, async () => {
    const t = tempDir();
    const profile = path.join(t.dir, 'chromium-profile');
    mkdirSync(profile);
    mkdirSync(path.join(t.dir, 'ct'));
    const webPort = await freePort();
    const { configFile, port, spoolDir } = await writeGatewayConfig({
      dir: t.dir,
      receive: { callers: [{ aeTitle: 'CT_SCANNER', host: '127.0.0.1' }] },
      config: {
        device: { id: 'edge-ct1' },
        health: { web: { port: webPort } },
        forward: [{ name: 'pacs', aeTitle: 'PACS', host: '127.0.0.1', port: await freePort(), compression: 'none' }],
        forwarding: { retryBaseSeconds: 0.2, retryMaxSeconds: 1 },
      },
    });
    const gw = await runGateway(configFile, { port, spoolDir });
    try {
      const ct = writeStudy(path.join(t.dir, 'ct'), 4);
      expect((await storescu({ port, files: ct.map((s) => s.file), callingAe: 'CT_SCANNER' })).acked).toHaveLength(4);
      expect((await echoscu(port, { callingAe: 'INTRUDER' })).code).not.toBe(0);
      const url = `http://127.0.0.1:${webPort}/`;
      const dom = await run('chromium', [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, '--dump-dom', url], { timeoutMs: 60_000 });
      expect(dom.stdout, dom.stderr.slice(-2000)).toContain('<h1>pacs-edge <code>edge-ct1</code>');
      const section = (id: string) => new RegExp(`<table id="${id}">([\\s\\S]*?)</table>`).exec(dom.stdout)?.[1] ?? '';
      expect(section('destinations')).toMatch(/<code>pacs<\/code><\/td><td><span class="(bad|warn)">/);
      expect(section('destinations')).toMatch(/<td>4 \(/);
      expect(section('studies')).toContain(`<code>${ct[0]!.studyUid}</code>`);
      expect(section('studies')).toMatch(/class="warn">pending<\/td><td>pacs: 0 sent, 4 pending/);
      expect(section('refused')).toMatch(/calling AE title.*<code>INTRUDER<\/code><\/td><td>127\.0\.0\.1/);
      expect(section('callers')).toContain('<code>CT_SCANNER</code></td><td>4</td>');
      expect(section('certificates')).toContain('spool.encryption.keyFile');
      expect(dom.stdout).toMatch(/<p id="spool">4 object\(s\)/);
      expect(dom.stdout).not.toContain('Test^Fixture');
      // The picture of it, for docs/status-page.png.
      const shot = path.join(ROOT, '.tmp', 'status-page.png');
      mkdirSync(path.dirname(shot), { recursive: true });
      const s = await run('chromium', [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, '--window-size=1280,1100', `--screenshot=${shot}`, url], { timeoutMs: 60_000 });
      expect(existsSync(shot), s.stderr.slice(-1000)).toBe(true);
      expect(statSync(shot).size).toBeGreaterThan(10_000);
      // Only GET / is served; nothing else.
      expect((await get(`${url}status.json`)).status).toBe(404);
    } finally {
      await gw.stop();
      t.cleanup();
    }
  });

  it('asks for the password when one is configured (HTTP Basic, user pacs-edge)', { timeout: 60_000 }, async () => {
    const t = tempDir();
    const webPort = await freePort();
    writeFileSync(path.join(t.dir, 'web.pass'), 'a long site password\n', { mode: 0o600 });
    const { configFile, port, spoolDir } = await writeGatewayConfig({ dir: t.dir, config: { health: { web: { port: webPort, passwordFile: path.join(t.dir, 'web.pass') } } } });
    const gw = await runGateway(configFile, { port, spoolDir });
    try {
      const url = `http://127.0.0.1:${webPort}/`;
      const none = await get(url);
      expect(none.status).toBe(401);
      const wrong = await get(url, { authorization: `Basic ${Buffer.from('pacs-edge:guess').toString('base64')}` });
      expect(wrong.status).toBe(401);
      const right = await get(url, { authorization: `Basic ${Buffer.from('pacs-edge:a long site password').toString('base64')}` });
      expect(right.status).toBe(200);
      expect(right.body).toContain('id="destinations"');
    } finally {
      await gw.stop();
      t.cleanup();
    }
  });
});
