import { copyFileSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { loadConfig } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { installRoot } from '../security/integrity.js';
import { stageDurableSync } from '../util/durable-write.js';
import { checkConfigCommand } from './check-config.js';
import { EXIT } from './exit-codes.js';

/**
 * `pacs-edge init`: a box set up with one command. Writes a validated configuration (default
 * /etc/pacs-edge/gateway.yaml) from a board profile and a few answers, keeps the file it
 * replaces as `<file>.previous`, then runs `check-config` on it.
 */
export const INIT_USAGE =
  '--device-id ID --ae-title AE --modality-ae AE [--modality-host ADDR] [--modality-port N] --pacs-ae AE --pacs-host HOST --pacs-port N ' +
  '[--compression jpeg-ls|htj2k|rle|deflate|none] [--profile NAME|FILE] [--host ADDR] [--port N] [--mqtt-url URL] [--spool DIR] [--config FILE]';

const PROFILE_DIRS = ['/usr/share/pacs-edge/profiles', path.join(installRoot(), 'firmware-config', 'profiles')];

/** The profile file for a name (`arm64-4c-2g`) or a path. */
export function profileFile(profile: string): string {
  if (profile.includes('/') || profile.endsWith('.yaml')) return path.resolve(profile);
  for (const dir of PROFILE_DIRS) {
    const f = path.join(dir, `${profile}.yaml`);
    if (existsSync(f)) return f;
  }
  throw new ConfigError([`--profile: no board profile "${profile}" in ${PROFILE_DIRS.join(' or ')}`]);
}

export function initCommand(option: (name: string) => string | undefined): number {
  const out = path.resolve(option('--config') ?? process.env.PACS_EDGE_CONFIG ?? '/etc/pacs-edge/gateway.yaml');
  const need = ['--device-id', '--ae-title', '--modality-ae', '--pacs-ae', '--pacs-host', '--pacs-port'];
  const missing = need.filter((n) => !option(n));
  if (missing.length) {
    console.error(`pacs-edge init: ${missing.join(', ')} required\nusage: pacs-edge init ${INIT_USAGE}`);
    return EXIT.usage;
  }
  const num = (n: string, v: string | undefined) => (v === undefined ? undefined : /^\d+$/.test(v) ? Number(v) : v);
  const doc: Record<string, unknown> = {
    extends: profileFile(option('--profile') ?? 'arm64-4c-2g'),
    device: { id: option('--device-id') },
    receive: {
      aeTitle: option('--ae-title'),
      ...(option('--host') ? { host: option('--host') } : {}),
      port: num('--port', option('--port')) ?? 11112,
      callers: [
        {
          aeTitle: option('--modality-ae'),
          ...(option('--modality-host') ? { host: option('--modality-host') } : {}),
          ...(option('--modality-port') ? { port: num('--modality-port', option('--modality-port')) } : {}),
        },
      ],
    },
    spool: { dir: path.resolve(option('--spool') ?? '/var/lib/pacs-edge/spool') },
    // The device layout: the control sockets in the unit's RuntimeDirectory (0711), where
    // operators and auditors can reach theirs (docs/operations.md, Roles).
    ...(option('--spool') === undefined ? { control: { socket: '/run/pacs-edge/control.socket' } } : {}),
    forward: [
      {
        name: 'pacs',
        aeTitle: option('--pacs-ae'),
        host: option('--pacs-host'),
        port: num('--pacs-port', option('--pacs-port')),
        ...(option('--compression') ? { compression: option('--compression') } : {}),
      },
    ],
    ...(option('--mqtt-url') ? { health: { mqtt: { url: option('--mqtt-url') } } } : {}),
  };
  const text =
    `# Written by \`pacs-edge init\` on ${new Date().toISOString()}. Every key: docs/configuration.md (/usr/share/doc/pacs-edge/configuration.md on a device);\n` +
    `# check it after an edit with: pacs-edge check-config --config ${out}\n` +
    stringify(doc);
  // Validated (with the profile it extends) before it replaces anything.
  // The file it replaces keeps its owner and mode (root:pacs-edge 0640 from the package), and stays as .previous.
  const st = existsSync(out) ? statSync(out) : undefined;
  const staged = stageDurableSync(out, text, {
    tmp: `${out}.init-${process.pid}.tmp`,
    mode: st ? st.mode & 0o777 : 0o640,
    exactMode: st !== undefined,
    owner: st ? { uid: st.uid, gid: st.gid } : undefined,
  });
  try {
    loadConfig(staged.tmp);
  } catch (err) {
    staged.discard();
    console.error(`pacs-edge init: ${err instanceof ConfigError ? err.message.replace(staged.tmp, out) : (err as Error).message}\nnothing was written`);
    return EXIT.failed;
  }
  if (st) copyFileSync(out, `${out}.previous`);
  staged.commit();
  console.log(`${out}: written${existsSync(`${out}.previous`) ? ` (the previous file is ${out}.previous)` : ''}`);
  const code = checkConfigCommand(out);
  if (code === EXIT.ok) console.log(`next: systemctl enable --now pacs-edge   (or: pacs-edge run --config ${out})`);
  return code;
}
