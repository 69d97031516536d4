import { availableParallelism } from 'node:os';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { configWarnings, validateConfig } from '../../src/config/validate.js';
import { ConfigError } from '../../src/errors.js';
import { CLI, ROOT, tempDir } from '../helpers/processes.js';

const tmp = tempDir('pacs-edge-config-test-');
afterAll(() => tmp.cleanup());

let fileNo = 0;
/** Write a config file (YAML text, or an object as JSON) under the temp dir and return its path. */
function write(content: string | object, name?: string): string {
  const file = path.join(tmp.dir, name ?? `config-${++fileNo}.${typeof content === 'string' ? 'yaml' : 'json'}`);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return file;
}

const MINIMAL = `
device:
  id: edge-01
receive:
  aeTitle: PACS_EDGE
  callers:
    - aeTitle: CT01
spool:
  dir: spool
`;

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).code).toBe('CONFIG_INVALID');
    return [...(e as ConfigError).problems];
  }
  return expect.fail('expected a ConfigError');
}

/** A minimal valid document plus overrides, validated without a file. */
function doc(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    device: { id: 'edge-01' },
    receive: { aeTitle: 'PACS_EDGE', callers: [{ aeTitle: 'CT01' }] },
    spool: { dir: '/var/lib/pacs-edge' },
    ...over,
  };
}
const validate = (d: unknown) => validateConfig(d, { baseDir: '/etc/pacs-edge' });

describe('loadConfig: a valid minimal file gets the defaults', () => {
  it('YAML', () => {
    const file = write(MINIMAL);
    const c = loadConfig(file);
    const spoolDir = path.join(tmp.dir, 'spool');
    expect(c).toEqual({
      device: { id: 'edge-01' },
      receive: {
        aeTitle: 'PACS_EDGE',
        host: '0.0.0.0',
        port: 11112,
        plain: true,
        callers: [{ aeTitle: 'CT01' }],
        maxAssociations: 8,
        maxPduLength: 262144,
        artimTimeoutSeconds: 30,
        idleTimeoutSeconds: 120,
        unknownSopClasses: 'reject',
        transferSyntaxes: 'all',
        maxObjectBytes: 4 * 1024 ** 3,
        commitment: { enabled: true, report: 'spooled', timeoutSeconds: 3600 },
        blocking: { rejections: 20, windowSeconds: 60, blockSeconds: 600, exempt: ['127.0.0.1', '::1'] },
      },
      spool: {
        dir: spoolDir,
        minFreeBytes: 1024 ** 3,
        maxBytes: 0,
        verifyOnStart: 'size',
        keepForwardedHours: 48,
        compressAtRest: true,
        encryption: { profile: 'aes-256-gcm', keyFile: path.join(tmp.dir, 'keys', 'device.key') },
      },
      forward: [],
      studies: { stableSeconds: 60, keepDays: 30 },
      forwarding: {
        connectTimeoutSeconds: 10,
        acseTimeoutSeconds: 30,
        responseTimeoutSeconds: 120,
        retryBaseSeconds: 2,
        retryMaxSeconds: 300,
        idleReleaseSeconds: 10,
        maxAttempts: 10,
        batch: 16,
        maxPduLength: 262144,
        commitBatch: 500,
        commitTimeoutSeconds: 3600,
      },
      log: { level: 'info' },
      control: { socket: path.join(spoolDir, 'control.sock') },
      workers: { threads: 2 },
      health: {},
      security: { integrity: 'warn', roles: { operatorsGroup: 'pacs-edge-operators', auditorsGroup: 'pacs-edge-auditors' } },
      compress: { workers: Math.max(1, availableParallelism() - 1), verify: true, maxObjectBytes: 256 * 1024 ** 2 },
      audit: { dir: path.join(tmp.dir, 'audit'), retentionDays: 180, maxBytes: 1024 ** 3, syslog: undefined, onFailure: 'refuse', patientId: 'pseudonym' },
      watchdog: { stallSeconds: 60 },
    });
    expect(configWarnings(c)).toEqual([]);
  });

  it('JSON parses too, with the same result', () => {
    const json = write({ device: { id: 'edge-01' }, receive: { aeTitle: 'PACS_EDGE', callers: [{ aeTitle: 'CT01' }] }, spool: { dir: 'spool' } });
    expect(loadConfig(json)).toEqual(loadConfig(write(MINIMAL)));
  });

  it('a full file keeps every given value', () => {
    const file = write(`
device: { id: edge.ward-3_b }
receive:
  aeTitle: " EDGE_AE "
  host: 127.0.0.1
  port: 104
  callers:
    - { aeTitle: CT01, host: 10.0.0.5, port: 104 }
    - { aeTitle: MR01 }
  maxAssociations: 4
  maxPduLength: 65536
  artimTimeoutSeconds: 10
  idleTimeoutSeconds: 600
  unknownSopClasses: accept
  transferSyntaxes: [1.2.840.10008.1.2.1, 1.2.840.10008.1.2.4.80]
spool:
  dir: /data/spool
  minFreeBytes: 2GiB
  maxBytes: 500MB
  verifyOnStart: sha256
  keepForwardedHours: 48
forward:
  - { name: central, aeTitle: PACS, host: pacs.example, port: 11112, callingAeTitle: EDGE01, associations: 4, compression: jpeg-ls, commit: true, prefetchBytes: 8MiB }
  - { name: backup, aeTitle: BACKUP, host: 10.9.9.9, port: 104 }
log: { level: debug }
control: { socket: run/ctl.sock }
workers: { threads: 3 }
`);
    const c = loadConfig(file);
    expect(c.device.id).toBe('edge.ward-3_b');
    expect(c.receive).toMatchObject({ aeTitle: 'EDGE_AE', host: '127.0.0.1', port: 104, maxAssociations: 4, maxPduLength: 65536, unknownSopClasses: 'accept' });
    expect(c.receive.callers).toEqual([{ aeTitle: 'CT01', host: '10.0.0.5', port: 104 }, { aeTitle: 'MR01' }]);
    expect(c.receive.transferSyntaxes).toEqual(['1.2.840.10008.1.2.1', '1.2.840.10008.1.2.4.80']);
    expect(c.spool).toEqual({
      dir: '/data/spool',
      minFreeBytes: 2 * 1024 ** 3,
      maxBytes: 500_000_000,
      verifyOnStart: 'sha256',
      keepForwardedHours: 48,
      compressAtRest: true,
      encryption: { profile: 'aes-256-gcm', keyFile: '/data/keys/device.key' },
    });
    expect(c.forward).toEqual([
      { name: 'central', aeTitle: 'PACS', host: 'pacs.example', port: 11112, callingAeTitle: 'EDGE01', associations: 4, compression: 'jpeg-ls', commit: true, prefetchBytes: 8 * 1024 * 1024 },
      { name: 'backup', aeTitle: 'BACKUP', host: '10.9.9.9', port: 104, associations: 2, compression: 'jpeg-ls', commit: false, prefetchBytes: 32 * 1024 * 1024 },
    ]);
    expect(c.compress.verify).toBe(true);
    expect(c.compress.workers).toBeGreaterThanOrEqual(1);
    expect(c.log.level).toBe('debug');
    expect(c.control.socket).toBe(path.join(tmp.dir, 'run/ctl.sock'));
    expect(c.workers.threads).toBe(3);
  });
});

describe('validation errors name their path and are all reported at once', () => {
  it('reports every problem of a bad file in one ConfigError', () => {
    const problems = problemsOf(() =>
      validate({
        device: { id: 'bad id with spaces' },
        receive: {
          aeTitle: 'THIS_AE_TITLE_IS_TOO_LONG',
          port: 70000,
          callers: [{ aeTitle: 'OK' }, { aeTitle: 'BAD\\AE' }],
          maxPduLength: 100,
          unknownSopClasses: 'maybe',
          transferSyntaxes: ['1.2.840.10008.1.2.1', 'not.a.uid'],
        },
        spool: { dir: '/x', minFreeBytes: 'lots', verifyOnStart: 'md5' },
        forward: [
          { name: 'central', aeTitle: 'PACS', host: 'h', port: 104 },
          { name: 'central', aeTitle: 'PACS2', host: 'h2', port: 0 },
          { aeTitle: 'X', host: 'h3', port: 104, associations: 64, compression: 'zip' },
        ],
        log: { level: 'loud' },
        workers: { threads: 1.5 },
      }),
    );
    const paths = problems.map((p) => p.slice(0, p.indexOf(':')));
    expect(paths).toEqual(
      expect.arrayContaining([
        'device.id',
        'receive.aeTitle',
        'receive.port',
        'receive.callers[1].aeTitle',
        'receive.maxPduLength',
        'receive.unknownSopClasses',
        'receive.transferSyntaxes[1]',
        'spool.minFreeBytes',
        'spool.verifyOnStart',
        'forward[1].name',
        'forward[1].port',
        'forward[2].name',
        'forward[2].associations',
        'forward[2].compression',
        'log.level',
        'workers.threads',
      ]),
    );
    expect(problems.length).toBe(16);
    expect(problems).toContain('forward[1].name: duplicate destination name "central"');
    expect(problems).toContain('forward[2].name: required');
    expect(problems.find((p) => p.startsWith('receive.port:'))).toMatch(/70000 is out of range \[1, 65535\]/);
  });

  it('ConfigError.message lists the file and every problem', () => {
    const file = write(MINIMAL.replace('aeTitle: PACS_EDGE', 'aeTitle: PACS_EDGE\n  port: -1\n  maxAssociations: 0'));
    try {
      loadConfig(file);
      expect.fail('expected ConfigError');
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const msg = (e as Error).message;
      expect(msg.startsWith(`${file}: invalid configuration:`)).toBe(true);
      expect(msg).toContain('receive.port: -1 is out of range');
      expect(msg).toContain('receive.maxAssociations: 0 is out of range');
    }
  });

  it('missing required sections and values', () => {
    expect(problemsOf(() => validate({}))).toEqual([
      'device: required section is missing',
      'receive: required section is missing',
      'spool: required section is missing',
      'spool.dir: required',
      'device.id: required',
      'receive.aeTitle: required',
      'receive.callers: at least one caller is required (use aeTitle "*" only for development)',
    ]);
  });

  it('a caller entry without aeTitle is an error, not a caller with an empty title', () => {
    const problems = problemsOf(() => validate(doc({ receive: { aeTitle: 'PACS_EDGE', callers: [{ aeTitle: 'CT01' }, { host: '10.0.0.1' }] } })));
    expect(problems).toEqual(['receive.callers[1].aeTitle: required']);
  });

  it('a caller host must be an IP address: host names are never resolved, so they could never match', () => {
    const problems = problemsOf(() => validate(doc({ receive: { aeTitle: 'PACS_EDGE', callers: [{ aeTitle: 'CT01', host: 'ct01.hospital.local' }, { aeTitle: 'CT02', host: '::1' }] } })));
    expect(problems).toEqual(['receive.callers[0].host: "ct01.hospital.local" is not an IP address (host names are not resolved)']);
  });

  it('receive.transferSyntaxes must name syntaxes the gateway knows', () => {
    const problems = problemsOf(() =>
      validate(doc({ receive: { aeTitle: 'PACS_EDGE', callers: [{ aeTitle: 'CT01' }], transferSyntaxes: ['1.2.840.10008.1.2.1', '1.2.3.4.5'] } })),
    );
    expect(problems).toEqual(['receive.transferSyntaxes[1]: "1.2.3.4.5" is not a transfer syntax this gateway knows']);
  });

  it('type errors say what was found', () => {
    const problems = problemsOf(() => validate(doc({ receive: { aeTitle: 42, callers: 'CT01', port: '104' }, forward: { name: 'x' }, log: [] })));
    expect(problems).toEqual(
      expect.arrayContaining([
        'receive.aeTitle: must be a non-empty string, got number 42',
        'receive.callers: must be a list, got string "CT01"',
        'receive.port: must be a number, got string "104"',
        'forward: must be a list, got a mapping',
        'log: must be a mapping, got a list',
      ]),
    );
  });

  it('unknown keys are errors, with "did you mean" for a wrong case', () => {
    const problems = problemsOf(() =>
      validate(doc({ receive: { aetitle: 'X', aeTitle: 'PACS_EDGE', callers: [{ aeTitle: 'CT01', Host: 'h' }], prot: 1 }, spool: { dir: '/x', maxbytes: 1 }, extra: true })),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        'receive.aetitle: unknown key (did you mean "aeTitle"?)',
        'receive.callers[0].Host: unknown key (did you mean "host"?)',
        'receive.prot: unknown key',
        'spool.maxbytes: unknown key (did you mean "maxBytes"?)',
        'extra: unknown key',
      ]),
    );
    expect(problems).toHaveLength(5);
  });

  it('AE titles: 1-16 characters, no backslash or control characters', () => {
    expect(validate(doc({ receive: { aeTitle: 'A234567890123456', callers: [{ aeTitle: '*' }] } })).receive.aeTitle).toBe('A234567890123456');
    for (const bad of ['A2345678901234567', '   ', 'TAB\tAE', 'ÄE', 'BACK\\SLASH']) {
      const problems = problemsOf(() => validate(doc({ receive: { aeTitle: bad, callers: [{ aeTitle: 'X' }] } })));
      expect(problems, JSON.stringify(bad)).toEqual([`receive.aeTitle: "${bad}" is not a valid AE title (1-16 ASCII characters, no backslash)`]);
    }
    // Surrounding spaces are not significant and are dropped.
    expect(validate(doc({ receive: { aeTitle: '  EDGE ', callers: [{ aeTitle: ' CT01 ' }] } })).receive).toMatchObject({ aeTitle: 'EDGE', callers: [{ aeTitle: 'CT01' }] });
  });
});

describe('byte counts', () => {
  const bytes = (v: unknown) => validate(doc({ spool: { dir: '/x', maxBytes: v } })).spool.maxBytes;

  it('accepts integers and strings with decimal and binary units', () => {
    expect(bytes(0)).toBe(0);
    expect(bytes(1234)).toBe(1234);
    expect(bytes('2GiB')).toBe(2147483648);
    expect(bytes('500MB')).toBe(500_000_000);
    expect(bytes('500 MB')).toBe(500_000_000);
    expect(bytes('64mib')).toBe(64 * 1024 * 1024);
    expect(bytes('1.5GiB')).toBe(1.5 * 1024 ** 3);
    expect(bytes('10k')).toBe(10_000);
    expect(bytes('3TB')).toBe(3e12);
    expect(bytes('42')).toBe(42);
    expect(bytes(' 7 B ')).toBe(7);
  });

  it('rejects anything else, naming the path', () => {
    for (const bad of ['2 parsecs', '-5MB', 'GiB', '', -1, 1.5, true, [1]]) {
      const problems = problemsOf(() => validate(doc({ spool: { dir: '/x', maxBytes: bad } })));
      expect(problems, JSON.stringify(bad)).toHaveLength(1);
      expect(problems[0]).toMatch(/^spool\.maxBytes: must be a byte count/);
    }
  });
});

describe('extends: device profiles', () => {
  it('merges the profile under the file: leaf values win, mappings merge, lists replace', () => {
    write(
      `
receive:
  port: 104
  maxAssociations: 4
  maxPduLength: 65536
  callers: [{ aeTitle: PROFILE_CALLER }]
spool:
  minFreeBytes: 2GiB
  verifyOnStart: sha256
workers: { threads: 4 }
log: { level: warn }
`,
      'profiles/arm64.yaml',
    );
    const leaf = write(
      `
extends: profiles/arm64.yaml
device: { id: edge-01 }
receive:
  aeTitle: PACS_EDGE
  port: 11112
  callers: [{ aeTitle: CT01 }]
spool:
  dir: spool
log: { level: debug }
`,
      'leaf-arm64.yaml',
    );
    const c = loadConfig(leaf);
    expect(c.receive.port).toBe(11112); // leaf overrides
    expect(c.receive.maxAssociations).toBe(4); // from profile
    expect(c.receive.maxPduLength).toBe(65536); // from profile
    expect(c.receive.aeTitle).toBe('PACS_EDGE'); // from leaf
    expect(c.receive.callers).toEqual([{ aeTitle: 'CT01' }]); // lists replace, not concatenate
    expect(c.spool).toMatchObject({ dir: path.join(tmp.dir, 'spool'), minFreeBytes: 2 * 1024 ** 3, verifyOnStart: 'sha256' });
    expect(c.workers.threads).toBe(4);
    expect(c.log.level).toBe('debug');
  });

  it('an empty section in the file (YAML null) keeps the profile\'s section', () => {
    write('workers: { threads: 3 }\nspool: { minFreeBytes: 3GiB }\n', 'profiles/nulls.yaml');
    const leaf = write(`extends: profiles/nulls.yaml\nworkers:\n${MINIMAL.replace('spool:\n  dir: spool', 'spool:\n  dir: spool')}`);
    const c = loadConfig(leaf);
    expect(c.workers.threads).toBe(3);
    expect(c.spool.minFreeBytes).toBe(3 * 1024 ** 3);
  });

  it('chains profiles (each relative to the file that names it)', () => {
    write('workers: { threads: 8 }\nreceive: { maxAssociations: 16, port: 1 }\n', 'chain/base.yaml');
    write('extends: ../base.yaml\nreceive: { port: 2 }\n', 'chain/mid/mid.yaml');
    const leaf = write(`extends: chain/mid/mid.yaml\n${MINIMAL}`, 'chain-leaf.yaml');
    const c = loadConfig(leaf);
    expect(c.workers.threads).toBe(8);
    expect(c.receive.maxAssociations).toBe(16);
    expect(c.receive.port).toBe(2);
  });

  it('relative paths are resolved against the directory of the file loaded, even when they come from a profile', () => {
    write('spool: { dir: from-profile }\ncontrol: { socket: ctl.sock }\n', 'profiles/paths.yaml');
    const leaf = write('extends: profiles/paths.yaml\ndevice: { id: e }\nreceive: { aeTitle: A, callers: [{ aeTitle: B }] }\n', 'paths-leaf.yaml');
    const c = loadConfig(leaf);
    expect(c.spool.dir).toBe(path.join(tmp.dir, 'from-profile'));
    expect(c.control.socket).toBe(path.join(tmp.dir, 'ctl.sock'));
  });

  it('detects cycles', () => {
    write('extends: cycle-b.yaml\n', 'cycle-a.yaml');
    write('extends: cycle-a.yaml\n', 'cycle-b.yaml');
    const problems = problemsOf(() => loadConfig(path.join(tmp.dir, 'cycle-a.yaml')));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^extends: cycle through .*cycle-a\.yaml$/);
    const self = write('extends: self.yaml\n', 'self.yaml');
    expect(problemsOf(() => loadConfig(self))[0]).toMatch(/cycle/);
  });

  it('reports a missing profile and a non-string extends', () => {
    const missing = write(`extends: profiles/nope.yaml\n${MINIMAL}`);
    expect(problemsOf(() => loadConfig(missing))[0]).toMatch(/^cannot read file/);
    const bad = write(`extends: [a, b]\n${MINIMAL}`);
    expect(problemsOf(() => loadConfig(bad))).toEqual(['extends: must be a file path']);
  });
});

describe('file-level problems', () => {
  it('relative spool.dir is resolved against the config file, not the working directory', () => {
    const file = write(MINIMAL.replace('dir: spool', 'dir: ../elsewhere/spool'), 'nested/dir/cfg.yaml');
    expect(loadConfig(file).spool.dir).toBe(path.join(tmp.dir, 'nested/elsewhere/spool'));
    const abs = write(MINIMAL.replace('dir: spool', 'dir: /srv/spool'));
    expect(loadConfig(abs).spool.dir).toBe('/srv/spool');
  });

  it('invalid YAML, duplicate keys, a top-level list and a missing file are ConfigErrors', () => {
    expect(problemsOf(() => loadConfig(write('device: [unclosed\n')))[0]).toMatch(/^not valid YAML\/JSON/);
    expect(problemsOf(() => loadConfig(write(`${MINIMAL}\ndevice: { id: again }\n`)))[0]).toMatch(/^not valid YAML\/JSON/);
    expect(problemsOf(() => loadConfig(write('- a\n- b\n')))).toEqual(['(top level): must be a mapping']);
    expect(problemsOf(() => loadConfig(path.join(tmp.dir, 'does-not-exist.yaml')))[0]).toMatch(/^cannot read file/);
  });

  it('an empty file reports the missing sections', () => {
    expect(problemsOf(() => loadConfig(write('')))).toContain('device: required section is missing');
  });
});

describe('configWarnings', () => {
  it('warns about a "*" caller', () => {
    const w = configWarnings(validate(doc({ receive: { aeTitle: 'PACS_EDGE', callers: [{ aeTitle: 'CT01' }, { aeTitle: '*' }] } })));
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/receive\.callers.*"\*"/);
  });

  it('warns about a small spool.minFreeBytes', () => {
    const w = configWarnings(validate(doc({ spool: { dir: '/x', minFreeBytes: '10MiB' } })));
    expect(w).toEqual([expect.stringMatching(/^spool\.minFreeBytes/)]);
    expect(configWarnings(validate(doc({ spool: { dir: '/x', minFreeBytes: '64MiB' } })))).toEqual([]);
  });

  it('the shipped development config is valid and warns about its wildcard caller', () => {
    const c = loadConfig(path.join(ROOT, 'firmware-config/dev.yaml'));
    expect(c.receive.callers).toEqual([{ aeTitle: '*' }]);
    expect(configWarnings(c).some((w) => w.includes('"*"'))).toBe(true);
  });
});

// dist/ is built from the current source before any test runs (test/fresh-dist.ts).
describe('CLI: pacs-edge check-config', () => {
  const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { cwd: tmp.dir, encoding: 'utf8', timeout: 30_000 });

  it('exits 0 on a valid file and summarises it', () => {
    const file = write(MINIMAL);
    const r = cli('check-config', '--config', file);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`${file}: valid`);
    expect(r.stdout).toContain('device edge-01');
    expect(r.stdout).toContain('AE PACS_EDGE on 0.0.0.0:11112');
  });

  it('exits 0 with a warning on stderr for a "*" caller (--config=FILE form)', () => {
    const file = write(MINIMAL.replace('aeTitle: CT01', 'aeTitle: "*"'));
    const r = cli('check-config', `--config=${file}`);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/^warning: receive\.callers/m);
  });

  it('exits 1 on an invalid file with every problem path on stderr', () => {
    const file = write(MINIMAL.replace('aeTitle: PACS_EDGE', 'aeTitle: PACS_EDGE\n  port: 99999\n  colers: []'));
    const r = cli('check-config', '--config', file);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(file);
    expect(r.stderr).toContain('receive.port');
    expect(r.stderr).toContain('receive.colers: unknown key');
  });

  it('exits 1 when the file does not exist, 2 without --config', () => {
    const missing = cli('check-config', '--config', path.join(tmp.dir, 'missing.yaml'));
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/cannot read file/);
    const none = spawnSync(process.execPath, [CLI, 'check-config'], { encoding: 'utf8', env: { ...process.env, PACS_EDGE_CONFIG: '' } });
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/--config FILE is required/);
  });
});

describe('health.mqtt', () => {
  it('gets its defaults; file paths resolve against the configuration directory', () => {
    const c = validate(doc({ health: { mqtt: { url: 'mqtts://broker.example:8883', passwordFile: 'mqtt.pass', tls: { ca: 'ca.pem' } } } }));
    expect(c.health.mqtt).toEqual({
      url: 'mqtts://broker.example:8883',
      topicPrefix: 'pacs-edge',
      intervalSeconds: 30,
      clientId: 'pacs-edge-edge-01',
      username: undefined,
      passwordFile: '/etc/pacs-edge/mqtt.pass',
      tls: { ca: '/etc/pacs-edge/ca.pem', cert: undefined, key: undefined },
      protocolVersion: 5,
      commands: false,
    });
    expect(validate(doc()).health.mqtt).toBeUndefined();
  });

  it('names every problem by its path', () => {
    const problems = problemsOf(() => validate(doc({ health: { mqtt: { url: 'http://x', topicPrefix: 'a/#', intervalSeconds: 0, protocolVersion: 3, commands: 'yes', password: 'secret' } } })));
    expect(problems.some((p) => p.startsWith('health.mqtt.url'))).toBe(true);
    expect(problems.some((p) => p.startsWith('health.mqtt.topicPrefix'))).toBe(true);
    expect(problems.some((p) => p.startsWith('health.mqtt.intervalSeconds'))).toBe(true);
    expect(problems.some((p) => p.startsWith('health.mqtt.protocolVersion'))).toBe(true);
    expect(problems.some((p) => p.startsWith('health.mqtt.commands'))).toBe(true);
    // A password in the configuration itself is refused: passwordFile keeps it out of config files and logs.
    expect(problems.some((p) => p.startsWith('health.mqtt.password'))).toBe(true);
  });
});

describe('receive.tls and the plain listener', () => {
  const tls = { port: 2762, cert: '/k/s.pem', key: '/k/s.key', ca: '/k/ca.pem' };
  it('TLS only unless a plain port is asked for; client certificates required by default', () => {
    const only = validate(doc({ receive: { aeTitle: 'PACS_EDGE', callers: [{ aeTitle: 'CT01' }], tls } }));
    expect(only.receive.plain).toBe(false);
    expect(only.receive.tls).toEqual({ ...tls, requireClientCert: true });
    expect(validate(doc({ receive: { aeTitle: 'PACS_EDGE', port: 104, callers: [{ aeTitle: 'CT01' }], tls } })).receive.plain).toBe(true);
    expect(validate(doc({ receive: { aeTitle: 'PACS_EDGE', callers: [{ aeTitle: 'CT01' }] } })).receive.plain).toBe(true);
  });

  it('refuses a required client certificate without a CA, no listener at all, and one port for both', () => {
    expect(() => validate(doc({ receive: { aeTitle: 'PACS_EDGE', callers: [{ aeTitle: 'CT01' }], tls: { ...tls, ca: undefined } } }))).toThrow(/receive\.tls\.ca: required/);
    expect(() => validate(doc({ receive: { aeTitle: 'PACS_EDGE', callers: [{ aeTitle: 'CT01' }], plain: false } }))).toThrow(/receive\.plain/);
    expect(() => validate(doc({ receive: { aeTitle: 'PACS_EDGE', port: 2762, callers: [{ aeTitle: 'CT01' }], tls } }))).toThrow(/receive\.tls\.port: the same as receive\.port/);
  });
});

describe('audit', () => {
  it('defaults beside the spool; every key kept; files resolved against the config directory', () => {
    const c = validate(doc());
    expect(c.audit).toEqual({ dir: '/var/lib/audit', retentionDays: 180, maxBytes: 1024 ** 3, syslog: undefined, onFailure: 'refuse', patientId: 'pseudonym' });
    const full = validate(doc({ audit: { dir: 'trail', retentionDays: 365, maxBytes: '2GiB', onFailure: 'alarm', patientId: 'none', syslog: { host: 'siem.example', ca: 'ca.pem', cert: 'c.pem', key: 'c.key' } } }));
    expect(full.audit).toEqual({
      dir: '/etc/pacs-edge/trail',
      retentionDays: 365,
      maxBytes: 2 * 1024 ** 3,
      onFailure: 'alarm',
      patientId: 'none',
      syslog: { host: 'siem.example', port: 6514, ca: '/etc/pacs-edge/ca.pem', cert: '/etc/pacs-edge/c.pem', key: '/etc/pacs-edge/c.key' },
    });
    expect(configWarnings(full).filter((w) => w.startsWith('audit'))).toEqual([]);
  });

  it('unknown keys, a lone cert, a bad port are errors; a short retention is allowed with a warning', () => {
    const problems = problemsOf(() => validate(doc({ audit: { retention: 10, syslog: { host: 'x', port: 0, cert: 'c.pem', tls: true } } })));
    expect(problems.some((p) => p.startsWith('audit.retention: unknown key'))).toBe(true);
    expect(problems.some((p) => p.startsWith('audit.syslog.tls: unknown key'))).toBe(true);
    expect(problems.some((p) => p.startsWith('audit.syslog.port'))).toBe(true);
    expect(problems.some((p) => p.startsWith('audit.syslog: cert and key go together'))).toBe(true);
    expect(problemsOf(() => validate(doc({ audit: { syslog: {} } })))).toContain('audit.syslog.host: required');
    const short = validate(doc({ audit: { retentionDays: 7 } }));
    expect(short.audit.retentionDays).toBe(7);
    expect(configWarnings(short).some((w) => w.startsWith('audit.retentionDays is 7'))).toBe(true);
  });

  it('audit.patientId: pseudonym (default), clear (with a warning) or none; anything else is an error', () => {
    expect(problemsOf(() => validate(doc({ audit: { patientId: 'hash' } }))).some((p) => p.startsWith('audit.patientId'))).toBe(true);
    expect(problemsOf(() => validate(doc({ audit: { patientId: true } }))).some((p) => p.startsWith('audit.patientId'))).toBe(true);
    const clear = validate(doc({ audit: { patientId: 'clear' } }));
    expect(clear.audit.patientId).toBe('clear');
    expect(configWarnings(clear).some((w) => w.startsWith('audit.patientId is clear'))).toBe(true);
    expect(configWarnings(validate(doc())).some((w) => w.startsWith('audit.patientId'))).toBe(false);
  });
});
