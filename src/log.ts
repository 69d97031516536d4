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
  return pino(
    {
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
}

export type { Logger };
