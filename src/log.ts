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
  const root = pino(
    {
      onChild: (child) => {
        children.add(new WeakRef(child as Logger));
      },
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
