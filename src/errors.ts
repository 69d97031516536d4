import { ERROR_CODES, type ErrorCode } from './error-codes.js';

export { Code, type ErrorCode } from './error-codes.js';

/**
 * One error base class for the whole gateway.
 *
 * Every failure that crosses a module boundary is a {@link PacsEdgeError}: it has a stable
 * machine-readable `code` (used in logs, metrics and the dead-letter list), the underlying
 * `cause`, and `retryable`, which decides between retry-with-backoff (transient) and the
 * dead-letter queue (permanent).
 *
 * Messages must never carry patient data: UIDs, tags, AE titles, sizes and statuses only.
 */
export class PacsEdgeError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  /** Extra, patient-data-free facts for the log line (UIDs, sizes, statuses). */
  readonly details: Readonly<Record<string, unknown>>;

  /** `retryable` defaults to the code's entry in {@link ERROR_CODES}. */
  constructor(
    code: ErrorCode,
    message: string,
    opts: { cause?: unknown; retryable?: boolean; details?: Record<string, unknown> } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'PacsEdgeError';
    this.code = code;
    this.retryable = opts.retryable ?? ERROR_CODES[code].retryable;
    this.details = opts.details ?? {};
  }

  /** A compact form for pino: no stack for expected errors, the cause's code when it has one. */
  toJSON(): Record<string, unknown> {
    const cause = this.cause as { code?: unknown; message?: unknown } | undefined;
    return {
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      ...this.details,
      ...(cause ? { cause: typeof cause.code === 'string' ? cause.code : String(cause.message ?? cause) } : {}),
    };
  }
}

/** The configuration is invalid; the gateway refuses to start. */
export class ConfigError extends PacsEdgeError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[], file?: string) {
    super('CONFIG_INVALID', `${file ? `${file}: ` : ''}invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** A DICOM byte stream (PDU, command or dataset) that cannot be understood. */
export class DicomParseError extends PacsEdgeError {
  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, { retryable: false, ...(details ? { details } : {}) });
    this.name = 'DicomParseError';
  }
}

/**
 * An association with a peer failed: no connection, a rejection, an abort, a timeout, or an
 * answer that breaks the protocol. Retryable unless the peer said the failure is permanent.
 */
export class AssociationError extends PacsEdgeError {
  constructor(code: ErrorCode, message: string, opts: { retryable: boolean; cause?: unknown; details?: Record<string, unknown> }) {
    super(code, message, opts);
    this.name = 'AssociationError';
  }
}

/** The spool cannot take more data right now (free space or size limit). Transient. */
export class SpoolFullError extends PacsEdgeError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('SPOOL_FULL', message, { retryable: true, ...(details ? { details } : {}) });
    this.name = 'SpoolFullError';
  }
}

/**
 * True for errors that mean the disk is full or over quota: Node system errors (ENOSPC,
 * EDQUOT), and LevelDB's, which arrive wrapped with the OS message as text in a cause.
 */
export function isDiskFull(err: unknown): boolean {
  for (let e = err as { code?: unknown; message?: unknown; cause?: unknown } | null | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.code === 'ENOSPC' || e.code === 'EDQUOT') return true;
    if (typeof e.message === 'string' && /No space left on device|Disk quota exceeded/i.test(e.message)) return true;
  }
  return false;
}

/**
 * A listener could not open its address (in use, not permitted, no such address): the gateway
 * must say which one and stop at once, never hang half-started.
 */
export function listenError(err: NodeJS.ErrnoException, what: string, host: string, port: number): PacsEdgeError {
  const why = err.code === 'EADDRINUSE' ? 'the address is already in use (another gateway or program listens there)' : err.code === 'EACCES' ? 'permission denied (a port below 1024 needs CAP_NET_BIND_SERVICE)' : err.code === 'EADDRNOTAVAIL' ? 'no such address on this host' : err.message;
  return new PacsEdgeError('LISTEN_FAILED', `${what} cannot listen on ${host}:${port}: ${why}`, { cause: err, retryable: false, details: { host, port, code: err.code } });
}
