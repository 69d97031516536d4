/**
 * The validated gateway configuration. Key names under `device`, `receive`, `spool` and
 * `forward` are read by scripts outside the project: never rename them.
 */
export interface CallerConfig {
  /** Calling AE title allowed to associate; "*" accepts any (development only). */
  aeTitle: string;
  /** When set, the caller must also come from this address (an IPv4 or IPv6 literal). */
  host?: string | undefined;
  /**
   * The caller's own DICOM port: where Storage Commitment results (N-EVENT-REPORT) are sent on
   * a new association. Without it, commitment requests from this caller are refused.
   */
  port?: number | undefined;
}

export interface ForwardConfig {
  name: string;
  aeTitle: string;
  host: string;
  port: number;
  callingAeTitle?: string | undefined;
  associations: number;
  /** Lossless compression proposed first to this destination (default jpeg-ls). */
  compression: 'none' | 'jpeg-ls' | 'htj2k' | 'rle' | 'deflate';
  /**
   * Memory for objects read, decrypted, checked and converted ahead of the one on the wire, per
   * destination (default 32 MiB). An object bigger than this is streamed from its file as it is sent.
   */
  prefetchBytes?: number;
  /** DICOM over TLS to this destination (BCP 195); the server certificate is verified against `ca`. */
  tls?: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined } | undefined;
  /**
   * Storage Commitment: after sending, ask the destination to commit (N-ACTION) and keep each
   * object in the spool until its N-EVENT-REPORT says committed (default false).
   */
  commit: boolean;
  /**
   * Routing: which objects this destination takes. Every condition given must hold (AND); a
   * list matches when any of its entries does. Without `match` a destination takes everything.
   * SOP Classes are UIDs (keywords are resolved by the validation).
   */
  match?: { callingAeTitle?: string[]; modality?: string[]; sopClass?: string[]; notSopClass?: string[] } | undefined;
}

/** `health.mqtt`: key names are read by scripts outside the project. */
export interface MqttConfig {
  /** mqtt:// or mqtts:// */
  url: string;
  topicPrefix: string;
  intervalSeconds: number;
  clientId: string;
  username?: string | undefined;
  /** File whose content (trimmed) is the password: never the password itself in the configuration. */
  passwordFile?: string | undefined;
  tls?: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined } | undefined;
  /** 5 (default, falls back to 3.1.1 when the broker refuses it) or 4 (3.1.1). */
  protocolVersion: 4 | 5;
  /** Subscribe to `cmd/<name>` and answer on `cmd-result/<name>`. */
  commands: boolean;
}

export type UnknownSopClassPolicy = 'reject' | 'accept';

export interface GatewayConfig {
  device: { id: string };
  receive: {
    aeTitle: string;
    host: string;
    /** The plain (unencrypted) DICOM port; see `plain`. */
    port: number;
    /**
     * Whether the plain listener runs: always without `tls`; with `tls` only when `receive.port`
     * (or `plain: true`) is set in the file. Every start with a plain listener raises a Security Alert.
     */
    plain: boolean;
    /** The DICOM TLS listener (PS3.15 B.9 BCP 195), beside or instead of the plain one. */
    tls?: { port: number; cert: string; key: string; ca?: string | undefined; requireClientCert: boolean } | undefined;
    callers: CallerConfig[];
    maxAssociations: number;
    maxPduLength: number;
    artimTimeoutSeconds: number;
    idleTimeoutSeconds: number;
    unknownSopClasses: UnknownSopClassPolicy;
    /** "all" or the list of transfer syntax UIDs accepted. */
    transferSyntaxes: 'all' | string[];
    /** Larger data sets are refused (their bytes are read and dropped, nothing is stored). */
    maxObjectBytes: number;
    /** An address refused `rejections` times within `windowSeconds` is blocked for `blockSeconds` (src/receive/caller-guard.ts). */
    blocking: { rejections: number; windowSeconds: number; blockSeconds: number; exempt: string[] };
    /** Storage Commitment SCP towards the modalities. */
    commitment: {
      /** Off: the SOP class is not accepted. */
      enabled: boolean;
      /**
       * When an instance counts as committed: `spooled` — durable in the spool (the gateway takes
       * responsibility); `forwarded` — delivered (and committed, where `commit` is set) to every
       * destination.
       */
      report: 'spooled' | 'forwarded';
      /** Instances not committed by then are reported as failed. */
      timeoutSeconds: number;
    };
  };
  spool: {
    dir: string;
    minFreeBytes: number;
    maxBytes: number;
    verifyOnStart: 'size' | 'sha256';
    keepForwardedHours: number;
    /** Replace spooled objects by their lossless JPEG-LS form soon after ingest (default true). */
    compressAtRest: boolean;
    /**
     * Encryption at rest (GB/T 39786): every object under a fresh data key, wrapped by the device
     * key in `keyFile` (0600, outside the spool, made at the first start). `chacha20-poly1305`
     * is for boards without AES instructions (RFC 8439; docs/security.md).
     */
    encryption: {
      profile: 'aes-256-gcm' | 'gm' | 'chacha20-poly1305' | 'none';
      keyFile: string;
      /**
       * Take the device key from a systemd credential of this name (`$CREDENTIALS_DIRECTORY/<name>`,
       * `LoadCredentialEncrypted=`, sealed to the TPM2 or the host key) instead of `keyFile`: no
       * clear key on the data partition. Configured and absent: the gateway refuses to start.
       */
      keyCredential?: string | undefined;
    };
  };
  forward: ForwardConfig[];
  /** Study-level bookkeeping: when a study counts as complete (no object for `stableSeconds`), how long its history stays. */
  studies: { stableSeconds: number; keepDays: number };
  /** How every destination is driven (timeouts, retries). */
  forwarding: {
    connectTimeoutSeconds: number;
    acseTimeoutSeconds: number;
    responseTimeoutSeconds: number;
    retryBaseSeconds: number;
    retryMaxSeconds: number;
    idleReleaseSeconds: number;
    maxAttempts: number;
    batch: number;
    maxPduLength: number;
    /** Objects asked about in one Storage Commitment request. */
    commitBatch: number;
    /** No N-EVENT-REPORT within this time: the objects are sent and asked about again. */
    commitTimeoutSeconds: number;
  };
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' };
  control: { socket: string };
  workers: { threads: number };
  /** Health reporting. */
  health: {
    mqtt?: MqttConfig | undefined;
    /** Prometheus /metrics: off unless `port` is set; host 127.0.0.1 unless configured otherwise. */
    metrics?: { host: string; port: number } | undefined;
    /**
     * A read-only status page for site IT (src/health/web.ts): off unless `port` is set; host
     * 127.0.0.1 unless configured. Not on loopback it needs `tls` and a password (HTTP Basic,
     * user `pacs-edge`) or client certificates (`tls.ca`).
     */
    web?: { host: string; port: number; tls?: { cert: string; key: string; ca?: string | undefined } | undefined; passwordFile?: string | undefined } | undefined;
  };
  /** Platform security (MLPS 2.0 level 3, 安全计算环境). */
  security: {
    /**
     * Installation integrity (可信验证): at `run`, every file listed in dist/MANIFEST.sha256 is
     * hashed before anything opens. `enforce`: a mismatch or a missing manifest stops the start
     * (exit code 4); `warn` (default): the same Security Alert, and the gateway starts; `off`.
     */
    integrity: 'enforce' | 'warn' | 'off';
    /**
     * Role separation (MLPS 2.0 三员分立) on the control sockets (src/health/roles.ts): members
     * of `operatorsGroup` may open `operator.socket`, members of `auditorsGroup` `auditor.socket`,
     * both next to `control.socket` (administrator, owner only). A group that does not exist
     * leaves its socket owner-only (a warning says so).
     */
    roles: { operatorsGroup: string; auditorsGroup: string };
  };
  /** Codec workers for transfer syntax conversion before forwarding. */
  compress: {
    /** Worker threads (default: cores − 1, at least 1). */
    workers: number;
    /** Decode every encoded frame and compare it with the original before sending (default true). */
    verify: boolean;
    /** Larger objects are sent as stored, never converted in memory (default 256 MiB). */
    maxObjectBytes: number;
  };
  /**
   * The tamper-evident DICOM audit trail (docs/audit.md). Key names (`dir`, `retentionDays`,
   * `maxBytes`, `syslog.host|port|ca|cert|key`) are read by scripts outside the project.
   */
  audit: {
    /** Day files, head, syslog cursor (default `<dirname(spool.dir)>/audit`). */
    dir: string;
    /** Day files older than this are deleted, the deletion audited (default 180; below 180 warns). */
    retentionDays: number;
    /** Size budget: alarm at 80 %, Security Alert at 100 %; records are never dropped (default 1 GiB). */
    maxBytes: number;
    /** Forward every record to a syslog server over TLS (RFC 5425). */
    syslog?: AuditSyslogConfig | undefined;
    /**
     * When a record cannot be written (disk full, I/O error): `refuse` (default, MLPS 2.0 level 3
     * 审计进程保护) answers new associations with a transient A-ASSOCIATE-RJ until the trail is
     * writable again; `alarm` keeps receiving (log, MQTT, status) and says at every start that
     * the trail may have gaps. Records are kept in memory and written when the disk recovers.
     */
    onFailure: 'refuse' | 'alarm';
    /**
     * The Patient participant of the messages about instances (src/security/patient-pseudonym.ts):
     * `pseudonym` (keyed HMAC of the Patient ID, default), `clear` (the ID itself), `none`.
     */
    patientId: 'pseudonym' | 'clear' | 'none';
  };
  /**
   * The in-process watchdog (src/util/loop-watchdog.ts): a worker thread kills the process when
   * the event loop has not run for `stallSeconds` (0 = off; default 60), leaving a marker that
   * the next start audits. systemd's WatchdogSec= is the outer line (src/startup/systemd-notify.ts).
   */
  watchdog: { stallSeconds: number };
}

/** `audit.syslog`: RFC 5425 (syslog over TLS 1.2+) server; files are resolved against the config file. */
export interface AuditSyslogConfig {
  host: string;
  /** Default 6514 (RFC 5425). */
  port: number;
  /** CA file the server certificate must chain to (default: the system CAs). */
  ca?: string | undefined;
  /** Client certificate and key files, for servers that authenticate clients (x509). */
  cert?: string | undefined;
  key?: string | undefined;
}
