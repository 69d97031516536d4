import { auditCommand, pseudonymCommand } from './audit.js';
import { loadConfig } from '../config/load.js';
import type { GatewayConfig } from '../config/types.js';
import { ConfigError } from '../errors.js';
import { VERSION } from '../version.js';
import { backupCommand, restoreCommand } from './backup.js';
import { checkConfigCommand } from './check-config.js';
import { initCommand, INIT_USAGE } from './init.js';
import { deadLetterCommand } from './dead-letter.js';
import { EXIT } from './exit-codes.js';
import { manifestCommand } from './manifest.js';
import { runCommand } from './run.js';
import { statusCommand } from './status.js';
import { resendCommand, studiesCommand, studyCommand } from './studies.js';
import { destinationCommand, logLevelCommand, reloadCommand } from './operate.js';

/**
 * Every `pacs-edge` command, in one table: the dispatcher, the usage text and the
 * operator-safety suite (test/cli/operator-safety.ts) all read it, so a command added here
 * without a safety case fails that suite.
 *
 * `spool` says what a command may do to the spool, and so how it must reach it
 * (src/spool/open.ts):
 * - `owns`: the gateway itself (`run`);
 * - `changes`: through the running gateway's control socket, or — when it is stopped — with
 *   the spool's lock, the device key and the gateway's own recovery, audited;
 * - `reads`: through the control socket, or the index opened briefly, read-only, no recovery;
 * - `none`: never opens it.
 */
export interface CommandArgs {
  /** Arguments after the command's words. */
  args: string[];
  /** `--name VALUE` or `--name=VALUE`. */
  option(name: string): string | undefined;
  has(flag: string): boolean;
}

export interface Command {
  /** The words that name it: `status`, `dead-letter retry`. */
  name: string;
  /** Its arguments, for the usage text. */
  usage: string;
  summary: string;
  spool: 'owns' | 'changes' | 'reads' | 'none';
  /** Whether `--config FILE` (or $PACS_EDGE_CONFIG) is required. */
  needsConfig: boolean;
  /**
   * Administrator only, enforced by the operating system: what the command touches (device key,
   * configuration, a stopped gateway's files) only root may read or write. Said at once, with
   * this reason, instead of failing half-way on a permission error (exit 8).
   */
  rootOnly?: string;
  run(a: CommandArgs & { configFile: string; config: () => GatewayConfig }): Promise<number>;
}

export const COMMANDS: readonly Command[] = [
  {
    name: 'run',
    usage: '--config FILE',
    summary: 'start the gateway (foreground; logs JSON to stdout)',
    spool: 'owns',
    needsConfig: true,
    run: (a) => runCommand(a.configFile),
  },
  {
    name: 'check-config',
    usage: '--config FILE [--for-start]',
    summary: 'validate a configuration and every file it names (present, readable by the service user, parses; certificates\' days left); exit 0 when valid, 1 when not (--for-start: an expired certificate only warns)',
    spool: 'none',
    needsConfig: true,
    run: async (a) => checkConfigCommand(a.configFile, { forStart: a.has('--for-start') }),
  },
  {
    name: 'init',
    usage: INIT_USAGE,
    summary: 'write a validated configuration (default /etc/pacs-edge/gateway.yaml) from a board profile and these answers, then check it',
    spool: 'none',
    needsConfig: false,
    run: async (a) => initCommand(a.option),
  },
  {
    name: 'status',
    usage: '--config FILE [--json | --watch [SECONDS]]',
    summary: 'queue, destination and receive state, from the running gateway or read from the spool',
    spool: 'reads',
    needsConfig: true,
    run: (a) => statusCommand(a.config(), a.has('--json'), watchInterval(a.args)),
  },
  ...(['list', 'show', 'retry', 'purge'] as const).map(
    (action): Command => ({
      name: `dead-letter ${action}`,
      usage:
        action === 'show'
          ? '--config FILE --destination NAME --id ID'
          : `--config FILE ${action === 'list' ? '[--destination NAME]' : '--destination NAME'}${action === 'list' ? '' : ' [--id ID ... | --study UID]'}${action === 'purge' ? ' --yes' : ''} [--json]`,
      summary:
        action === 'list'
          ? 'objects a destination refused for good'
          : action === 'show'
            ? "one dead letter with the destination's Error Comment opened (needs the device key; audited)"
            : action === 'retry'
              ? 'queue dead letters again (audited)'
              : 'give up on dead letters for good: the destination will never get them (audited)',
      spool: action === 'list' || action === 'show' ? 'reads' : 'changes',
      needsConfig: true,
      run: (a) => deadLetterCommand(a.config(), action, a.args, a.option),
    }),
  ),
  {
    name: 'studies',
    usage: '--config FILE [--since 2h] [--state pending|delivered|incomplete|all] [--accession A] [--json]',
    summary: 'what happened to each study: instances, series, modalities, state, per destination forwarded/pending/dead letters',
    spool: 'reads',
    needsConfig: true,
    run: (a) => studiesCommand(a.config(), a.option, a.has),
  },
  {
    name: 'study',
    usage: 'UID --config FILE [--json]',
    summary: 'one study, with its series',
    spool: 'reads',
    needsConfig: true,
    run: (a) => studyCommand(a.config(), a.args.find((x, i) => !x.startsWith('-') && a.args[i - 1] !== '--config'), a.has),
  },
  {
    name: 'resend',
    usage: '--study UID --config FILE [--destination NAME] [--json]',
    summary: 'queue a study again (what is still in the spool: spool.keepForwardedHours); audited',
    spool: 'changes',
    needsConfig: true,
    run: (a) => resendCommand(a.config(), a.option, a.has),
  },
  ...(['pause', 'resume', 'echo'] as const).map(
    (action): Command => ({
      name: `destination ${action}`,
      usage: 'NAME --config FILE [--json]',
      summary:
        action === 'pause'
          ? 'stop sending to a destination (objects stay queued) until resumed or restarted; audited'
          : action === 'resume'
            ? 'send to a paused destination again; audited'
            : "a real C-ECHO with the destination's settings (TLS included); exit 0 on Success",
      spool: 'none',
      needsConfig: true,
      run: (a) => destinationCommand(a.config(), action, a.args, a.has('--json')),
    }),
  ),
  {
    name: 'log-level',
    usage: 'fatal|error|warn|info|debug|trace --config FILE',
    summary: "change the running gateway's log level (until the next start); audited",
    spool: 'none',
    needsConfig: true,
    run: (a) => logLevelCommand(a.config(), a.args),
  },
  {
    name: 'reload',
    usage: '--config FILE [--json]',
    summary: 're-read the configuration and certificates (callers, TLS files, destinations, log level; also SIGHUP); anything else is refused, with the reason',
    spool: 'none',
    needsConfig: true,
    run: (a) => reloadCommand(a.config(), a.has('--json')),
  },
  {
    name: 'audit verify',
    usage: '--config FILE [--json]',
    summary: "check the audit trail's HMAC chain; exit 0 intact, 3 not intact (the reading is audited: 110101)",
    spool: 'none',
    needsConfig: true,
    run: (a) => auditCommand(a.config(), a.has('--json')),
  },
  {
    name: 'audit pseudonym',
    usage: '--config FILE  (the Patient ID on stdin)',
    summary: "print the Patient participant the audit trail names a Patient ID by (audit.patientId: pseudonym), to search the trail; audited",
    spool: 'none',
    needsConfig: true,
    run: (a) => pseudonymCommand(a.config()),
  },
  {
    name: 'backup',
    usage: '--config FILE --out FILE.peb --passphrase-file FILE [--force]',
    summary: 'one encrypted file: configuration and profiles, device key, TLS/MQTT credentials, audit head',
    spool: 'none',
    needsConfig: true,
    rootOnly: 'it exports the device key and credentials',
    run: (a) => backupCommand(a.configFile, a.args, a.option),
  },
  {
    name: 'restore',
    usage: '--in FILE.peb --passphrase-file FILE --root DIR [--force]',
    summary: 'write a backup back under DIR (--root / in place); refused while the gateway runs or when its key would strand queued objects',
    spool: 'changes',
    needsConfig: false,
    rootOnly: 'it writes the configuration, the device key and the audit head',
    run: (a) => restoreCommand(a.args, a.option),
  },
  {
    name: 'manifest',
    usage: '[--root DIR] [--check]',
    summary: 'write DIR/dist/MANIFEST.sha256 (this installation), or --check it (exit 0 intact, 4 not)',
    spool: 'none',
    needsConfig: false,
    run: async (a) => manifestCommand(a.option('--root'), a.has('--check')),
  },
  {
    name: 'version',
    usage: '',
    summary: 'print the version (also --version)',
    spool: 'none',
    needsConfig: false,
    run: async () => {
      console.log(`pacs-edge ${VERSION} (node ${process.versions.node})`);
      return EXIT.ok;
    },
  },
  {
    name: 'help',
    usage: '',
    summary: 'this text (also --help)',
    spool: 'none',
    needsConfig: false,
    run: async () => {
      console.log(usageText());
      return EXIT.ok;
    },
  },
];

export function usageText(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  pacs-edge ${c.name.padEnd(width)}  ${c.usage}\n  ${' '.repeat(width + 12)}${c.summary}`);
  return `pacs-edge ${VERSION} — DICOM edge gateway\n\nusage:\n${lines.join('\n')}\n\nexit codes: 0 ok, 1 failed, 2 usage, 3 audit trail not intact, 4 installation integrity, 5 device key missing or wrong, 6 spool in use, 7 spool or audit trail of a newer release, 8 your role may not do this`;
}

const ALIASES: Record<string, string> = { '--version': 'version', '-v': 'version', '--help': 'help', '-h': 'help' };

/** The command named by the first words of `argv`, the longest name that matches. */
export function findCommand(argv: readonly string[]): { command: Command; rest: string[] } | undefined {
  const words = [ALIASES[argv[0] ?? ''] ?? argv[0], ...argv.slice(1)];
  let best: Command | undefined;
  for (const c of COMMANDS) {
    const n = c.name.split(' ');
    if (n.every((w, i) => words[i] === w) && (!best || n.length > best.name.split(' ').length)) best = c;
  }
  return best ? { command: best, rest: argv.slice(best.name.split(' ').length) } : undefined;
}

/** Run `pacs-edge ARGV`; resolves with the exit code. */
export async function dispatch(argv: string[]): Promise<number> {
  if (argv.length === 0) {
    console.error(usageText());
    return EXIT.usage;
  }
  const found = findCommand(argv);
  if (!found) {
    const group = COMMANDS.filter((c) => c.name.startsWith(`${argv[0]} `)).map((c) => c.name.split(' ')[1]);
    if (group.length > 0) console.error(`pacs-edge ${argv[0]}: unknown or missing action${argv[1] ? ` "${argv[1]}"` : ''}; one of: ${group.join(', ')}`);
    else console.error(`pacs-edge: unknown command "${argv[0]}"; the commands are: ${COMMANDS.map((c) => c.name).join(', ')}\n\n${usageText()}`);
    return EXIT.usage;
  }
  const { command, rest } = found;
  if (command.rootOnly && process.geteuid?.() !== 0) {
    console.error(`pacs-edge ${command.name}: administrator only (run it as root: sudo pacs-edge ${command.name} …): ${command.rootOnly}; nothing was done`);
    return EXIT.roleDenied;
  }
  const option = (name: string): string | undefined => {
    const i = rest.indexOf(name);
    if (i >= 0) return rest[i + 1];
    return rest.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
  };
  const configFile = option('--config') ?? process.env.PACS_EDGE_CONFIG;
  if (command.needsConfig && !configFile) {
    console.error(`pacs-edge ${command.name}: --config FILE is required (usage: pacs-edge ${command.name} ${command.usage})`);
    return EXIT.usage;
  }
  let config: GatewayConfig | undefined;
  return command.run({
    args: rest,
    option,
    has: (flag) => rest.includes(flag),
    configFile: configFile ?? '',
    config: () => (config ??= loadConfig(configFile!)),
  });
}

/** `--watch` (2 s) or `--watch N`: the refresh period of the live status view. */
function watchInterval(args: string[]): number | undefined {
  const i = args.indexOf('--watch');
  if (i < 0) return undefined;
  const n = Number(args[i + 1]);
  return Number.isFinite(n) && n >= 0.5 ? n : 2;
}

/** A configuration error as one readable message (the dispatcher's callers print it). */
export function configMessage(err: unknown, file: string): string {
  return err instanceof ConfigError ? err.message : `${file}: ${(err as Error).message}`;
}
