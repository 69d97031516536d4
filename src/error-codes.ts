/**
 * Every error code the gateway gives, in one table: what it means, whether trying again can
 * help (retry with backoff) or not (dead letter, refusal, exit), and what it becomes on the
 * wire or for the operator:
 * - `status`: the DIMSE status a request that fails with it is answered with (PS3.7 Annex C);
 * - `abort`: the A-ABORT reason when it ends an association (PS3.8 Table 9-26);
 * - `exit`: the exit code of a command it ends (src/cli/exit-codes.ts), when not plain "failed".
 *
 * Only names are stored here (a key of the status table in src/dicom/status.ts, of Abort.Reason
 * in src/dicom/pdu.ts, of EXIT in src/cli/exit-codes.ts; test/dicom/errors.test.ts checks each
 * exists), so this module stays at the bottom of the import order and imports nothing.
 *
 * Codes are compared through {@link Code} (`err.code === Code.SPOOL_CORRUPT`), never as string
 * literals: a typo is then a compile error, and every code in use is listed here.
 */
interface CodeInfo {
  readonly meaning: string;
  readonly retryable: boolean;
  readonly status?: string;
  readonly abort?: 'UnrecognizedPdu' | 'UnexpectedPdu' | 'InvalidPduParameterValue';
  readonly exit?: 'spoolKey' | 'formatNewer' | 'spoolBusy' | 'roleDenied';
}

export const ERROR_CODES = {
  // ---- configuration and start-up ------------------------------------------------------
  CONFIG_INVALID: { meaning: 'the configuration file is invalid; the gateway refuses to start', retryable: false },
  LISTEN_FAILED: { meaning: 'a listener cannot open its address (in use, not permitted, no such address)', retryable: false },
  CONTROL_SOCKET_IN_USE: { meaning: 'another gateway answers on the control socket', retryable: false },
  RELOAD_REFUSED: { meaning: 'a configuration reload was refused (not started from a file, or not applicable)', retryable: false },
  CONTROL_BAD_REQUEST: { meaning: 'a control request (CLI or MQTT command) is malformed', retryable: false },
  GATEWAY_RUNNING: { meaning: 'the command needs a stopped gateway', retryable: false, exit: 'spoolBusy' },
  ROLE_DENIED: { meaning: 'the caller’s role (administrator, operator, auditor) may not do this, or the caller has none', retryable: false, exit: 'roleDenied' },
  CONTROL_PROOF_FAILED: { meaning: 'a control request did not prove who sent it (no, a reused or a forged who-file)', retryable: false, exit: 'roleDenied' },

  // ---- keys and formats ----------------------------------------------------------------
  DEVICE_KEY_MISSING: { meaning: 'the device key is missing but data was made with it; none is made', retryable: false, exit: 'spoolKey' },
  DEVICE_KEY_CREDENTIAL_MISSING: { meaning: 'spool.encryption.keyCredential is configured but the systemd credential is not there ($CREDENTIALS_DIRECTORY); no key is made', retryable: false, exit: 'spoolKey' },
  DEVICE_KEY_MISMATCH: { meaning: 'the device key is not the one this box’s data was made with', retryable: false, exit: 'spoolKey' },
  SPOOL_KEY_MISSING: { meaning: 'the spool holds sealed objects and there is no key', retryable: false, exit: 'spoolKey' },
  SPOOL_KEY_MISMATCH: { meaning: 'the key opens none of the spool’s sealed objects', retryable: false, exit: 'spoolKey' },
  SPOOL_FORMAT_UNKNOWN: { meaning: 'sealed objects in a format this release cannot read', retryable: false, exit: 'spoolKey' },
  KEY_FILE_INVALID: { meaning: 'a key file cannot be read as a key', retryable: false, exit: 'spoolKey' },
  KEY_FILE_MODE: { meaning: 'a key file is readable by others than its owner', retryable: false, exit: 'spoolKey' },
  SPOOL_FORMAT_NEWER: { meaning: 'the spool was written by a newer release', retryable: false, exit: 'formatNewer' },
  AUDIT_FORMAT_NEWER: { meaning: 'the audit trail was written by a newer release', retryable: false, exit: 'formatNewer' },

  // ---- the spool -----------------------------------------------------------------------
  SPOOL_LOCKED: { meaning: 'another process holds the spool', retryable: true, exit: 'spoolBusy' },
  SPOOL_INDEX_MISSING: { meaning: 'the spool has no index (not initialised, or the wrong directory)', retryable: false, exit: 'spoolBusy' },
  SPOOL_FULL: { meaning: 'the spool volume is below its free-space floor or at its size limit', retryable: true, status: 'OutOfResources' },
  SPOOL_CORRUPT: { meaning: 'a spooled object fails its checks (checksum, seal); it is never sent', retryable: false, status: 'ProcessingFailure' },
  SPOOL_FILE_INVALID: { meaning: 'a spool file is not the Part 10 file its record describes', retryable: false },
  SPOOL_NOT_FOUND: { meaning: 'no spooled object with this id', retryable: false },
  SPOOL_WRITE_SHORT: { meaning: 'a rewritten object file is shorter on disk than written', retryable: true },
  STUDY_NOT_FOUND: { meaning: 'no such study in the spool’s history', retryable: false },
  OBJECT_TOO_LARGE: { meaning: 'a data set exceeds receive.maxObjectBytes', retryable: false, status: 'OutOfResources' },
  DEFLATE_TOO_LARGE: { meaning: 'a deflated data set inflates beyond the object size limit (a deflate bomb)', retryable: false, status: 'OutOfResources' },
  SPOOL_CLOSED: { meaning: 'the spool is closed (the gateway is stopping)', retryable: true, status: 'OutOfResources' },
  SPOOL_WRITER_FAILED: { meaning: 'the worker thread writing a received object stopped', retryable: true, status: 'OutOfResources' },
  HASH_POOL_CLOSED: { meaning: 'the hashing workers are shut down', retryable: true },
  HASH_FAILED: { meaning: 'a spool file cannot be hashed', retryable: false },
  AUDIT_LOCKED: { meaning: 'another process holds the audit trail', retryable: true, exit: 'spoolBusy' },
  AUDIT_CLOSED: { meaning: 'the audit trail is closed', retryable: false },

  // ---- bytes from a peer or a file that break DICOM ------------------------------------
  PDU_UNRECOGNIZED: { meaning: 'a PDU of a type PS3.8 does not define', retryable: false, abort: 'UnrecognizedPdu' },
  PDU_UNEXPECTED: { meaning: 'a PDU the state machine does not allow in its state', retryable: false, abort: 'UnexpectedPdu' },
  PDU_MALFORMED: { meaning: 'a PDU whose fields do not decode', retryable: false, abort: 'InvalidPduParameterValue' },
  PDU_TOO_LONG: { meaning: 'a PDU longer than the negotiated or sane maximum', retryable: false, abort: 'InvalidPduParameterValue' },
  PDV_MALFORMED: { meaning: 'PDVs that break PS3.8 Annex E (reserved bits, interleaving, wrong context)', retryable: false, abort: 'InvalidPduParameterValue' },
  COMMAND_TOO_LONG: { meaning: 'a command set beyond any real one (64 KiB)', retryable: false, abort: 'InvalidPduParameterValue' },
  COMMAND_TRUNCATED: { meaning: 'a command set that ends inside an element', retryable: false, abort: 'InvalidPduParameterValue' },
  COMMAND_MALFORMED: { meaning: 'a command set with non-command elements', retryable: false, abort: 'InvalidPduParameterValue' },
  DATASET_TOO_LARGE: { meaning: 'a data set held in memory beyond its bound (Storage Commitment)', retryable: false, abort: 'InvalidPduParameterValue' },
  DATASET_TRUNCATED: { meaning: 'a data set that ends inside an element', retryable: false, status: 'CannotUnderstandTruncated' },
  DATASET_MALFORMED: { meaning: 'a data set that does not parse', retryable: false, status: 'CannotUnderstandMalformed' },
  DATASET_TOO_DEEP: { meaning: 'sequences nested deeper than any real object (MAX_NESTING in src/dicom/dataset-walker.ts)', retryable: false, status: 'CannotUnderstandTooDeep' },
  CODEC_FAILED: { meaning: 'a compressed frame that does not decode, or an image the codec cannot encode', retryable: false },

  // ---- an association we requested -----------------------------------------------------
  CONNECT_TIMEOUT: { meaning: 'no connection to the peer within connectTimeoutMs', retryable: true },
  CONNECT_FAILED: { meaning: 'the connection to the peer failed (refused, unreachable)', retryable: true },
  TLS_FAILED: { meaning: 'the TLS handshake with the peer failed (certificate, protocol)', retryable: true },
  ASSOCIATION_REJECTED: { meaning: 'the peer rejected the association (retryable when it said transient)', retryable: false },
  ASSOCIATION_ABORTED: { meaning: 'the peer aborted the association', retryable: true },
  CONTEXT_REJECTED: { meaning: 'the peer accepted no presentation context for what is to be sent', retryable: true },
  PROTOCOL_ERROR: { meaning: 'the peer sent something unreadable', retryable: true },
  DIMSE_TIMEOUT: { meaning: 'no answer from the peer within its timeout', retryable: true },
  DIMSE_UNEXPECTED: { meaning: 'the peer answered with another message than the one due', retryable: true },
  DIMSE_NO_STATUS: { meaning: 'a response without a status', retryable: true },
  NO_RESPONSE: { meaning: 'the association ended before the answer came', retryable: true },
  SEND_TIMEOUT: { meaning: 'the peer stopped reading what we sent', retryable: true },
  CONNECTION_LOST: { meaning: 'the connection broke while sending', retryable: true },

  // ---- backups -------------------------------------------------------------------------
  NOT_A_BACKUP: { meaning: 'the file is not a pacs-edge backup', retryable: false },
  UNSUPPORTED_VERSION: { meaning: 'a backup format this release does not read', retryable: false },
  WRONG_PASSPHRASE: { meaning: 'the backup passphrase is wrong', retryable: false },
  TAMPERED: { meaning: 'the backup is damaged or has been tampered with', retryable: false },
  BACKUP_PATH_REFUSED: { meaning: 'a backup names a path outside the directories its configuration owns, or a link was planted in the target; nothing restored', retryable: false },
  EXISTS: { meaning: 'the output file exists (use --force)', retryable: false },
  INVALID: { meaning: 'a file to back up or restore cannot be read', retryable: false },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The codes by name: `Code.SPOOL_CORRUPT === 'SPOOL_CORRUPT'`. */
export const Code = Object.freeze(Object.fromEntries(Object.keys(ERROR_CODES).map((k) => [k, k]))) as { readonly [K in ErrorCode]: K };

/** What a code means, and how it is answered. */
export function codeInfo(code: ErrorCode): CodeInfo {
  return ERROR_CODES[code];
}
