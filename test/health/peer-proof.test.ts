import { linkSync, lstatSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Challenges, createWhoFile } from '../../src/health/peer-proof.js';
import { mayCall, MQTT_COMMAND_ROLES, ROUTE_ROLES } from '../../src/health/roles.js';
import { tempDir } from '../helpers/processes.js';

/** The who-file proof (src/health/peer-proof.ts) and the role table (src/health/roles.ts), in process. */
describe('who-file proof', () => {
  const t = tempDir();
  afterAll(() => t.cleanup());
  const who = path.join(t.dir, 'who');
  const ch = new Challenges(who);

  it('makes a 1733 directory of its own; a file made for a nonce proves its owner once, and is removed', async () => {
    await ch.prepare();
    expect(statSync(who).mode & 0o7777).toBe(0o1733);
    const n = ch.issue('operator');
    createWhoFile(who, n);
    expect(await ch.verify(n, 'operator')).toBe(process.geteuid!());
    expect(() => lstatSync(path.join(who, n))).toThrow();
    createWhoFile(who, n);
    await expect(ch.verify(n, 'operator')).rejects.toMatchObject({ code: 'CONTROL_PROOF_FAILED', message: /used already/ });
  });

  it('refuses a nonce of another socket, one never issued, none, a symlink and a hard link', async () => {
    const n1 = ch.issue('auditor');
    createWhoFile(who, n1);
    await expect(ch.verify(n1, 'administrator')).rejects.toMatchObject({ code: 'CONTROL_PROOF_FAILED' });
    await expect(ch.verify('cd'.repeat(32), 'operator')).rejects.toThrow(/not issued/);
    await expect(ch.verify(undefined, 'operator')).rejects.toThrow(/no x-pacs-edge-proof/);
    const n2 = ch.issue('operator');
    symlinkSync('/etc/hostname', path.join(who, n2));
    await expect(ch.verify(n2, 'operator')).rejects.toThrow(/not a regular file/);
    const n3 = ch.issue('operator');
    writeFileSync(path.join(who, 'mine'), '');
    linkSync(path.join(who, 'mine'), path.join(who, n3));
    await expect(ch.verify(n3, 'operator')).rejects.toThrow(/more than one link/);
    const n4 = ch.issue('operator');
    await expect(ch.verify(n4, 'operator')).rejects.toThrow(/no who-file/);
  });

  it('keeps at most 1024 nonces waiting: asking in a loop cannot grow memory, the oldest go first', async () => {
    const first = ch.issue('operator');
    for (let i = 0; i < 1100; i++) ch.issue('operator');
    createWhoFile(who, first);
    await expect(ch.verify(first, 'operator')).rejects.toThrow(/not issued/);
  });
});

describe('role table', () => {
  it('operators run the gateway, auditors read the trail, only the administrator purges and reloads; unlisted routes are the administrator\'s', () => {
    expect(mayCall('operator', 'POST /destinations/pause')).toBe(true);
    expect(mayCall('operator', 'POST /dead-letters/purge')).toBe(false);
    expect(mayCall('operator', 'POST /reload')).toBe(false);
    expect(mayCall('operator', 'POST /audit/verify')).toBe(false);
    expect(mayCall('auditor', 'POST /audit/verify')).toBe(true);
    expect(mayCall('auditor', 'POST /destinations/pause')).toBe(false);
    expect(mayCall('auditor', 'GET /status')).toBe(true);
    expect(mayCall('operator', 'POST /something-new')).toBe(false);
    expect(mayCall('administrator', 'POST /something-new')).toBe(true);
    for (const roles of Object.values(ROUTE_ROLES)) expect(roles).toContain('administrator');
    // No MQTT command is the administrator's: those are never taken over the network.
    for (const roles of Object.values(MQTT_COMMAND_ROLES)) expect(roles).not.toContain('administrator');
  });
});
