import { fstatSync } from 'node:fs';
import pino, { type Logger } from 'pino';

/**
 * The gateway's logger: pino JSON on stdout (journald under systemd).
 *
 * Rule for every call site: UIDs, AE titles, addresses, sizes, counts and statuses only —
 * never patient names, IDs or birth dates. The gateway never decodes patient attributes, so
 * they cannot reach a log line by accident; the redact list is a second line of defence for
 * fields that a future change might add by mistake.
 */
export function createLogger(opts: { level?: string; deviceId?: string; destination?: pino.DestinationStream } = {}): Logger {
  // Children made by the modules (log.child) keep the level they were made with: they are
  // remembered, so that `pacs-edge log-level` changes all of them (setLogLevel).
  const children = new Set<WeakRef<Logger>>();
  const journal = !opts.destination && toJournal();
  const root = pino(
    {
      onChild: (child) => {
        children.add(new WeakRef(child as Logger));
      },
      // Under systemd, stdout goes to the journal: a `<N>` syslog priority in front of each line
      // (SyslogLevelPrefix=, on by default) gives the journal the line's priority, so
      // `journalctl -u pacs-edge -p err` shows errors only. The rest of the line stays JSON.
      ...(journal ? { hooks: { streamWrite: (line: string) => `<${priorityOf(line)}>${line}` } } : {}),
      level: opts.level ?? 'info',
      base: { device: opts.deviceId ?? 'unknown' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ['patientName', 'patientId', 'patientBirthDate', '*.patientName', '*.patientId', '*.patientBirthDate'],
        censor: '[redacted]',
      },
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.destination ?? pino.destination({ dest: 1, sync: false }),
  );
  families.set(root, children);
  return root;
}

const families = new WeakMap<Logger, Set<WeakRef<Logger>>>();

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/** Change the level of a logger made by {@link createLogger} and of every child made from it since. */
export function setLogLevel(root: Logger, level: (typeof LOG_LEVELS)[number]): void {
  root.level = level;
  const children = families.get(root);
  if (!children) return;
  for (const ref of children) {
    const c = ref.deref();
    if (c) c.level = level;
    else children.delete(ref);
  }
}

export type { Logger };

/** syslog(3) priorities of the log levels (sd-daemon(3) prefixes). */
const PRIORITY: Record<string, number> = { fatal: 2, error: 3, warn: 4, info: 6, debug: 7, trace: 7 };

function priorityOf(line: string): number {
  const m = /"level":"(\w+)"/.exec(line);
  return (m && PRIORITY[m[1]!]) ?? 6;
}

/**
 * True when stdout is the journal's stream: systemd sets JOURNAL_STREAM to its "device:inode"
 * (children inherit the variable even with stdout elsewhere, so the stream itself is compared).
 */
function toJournal(): boolean {
  const v = process.env.JOURNAL_STREAM;
  if (!v) return false;
  try {
    const st = fstatSync(1);
    return v === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}
