/**
 * The store-and-forward spool: the one interface every implementation provides, and that the
 * receive and forward stages depend on. `test/spool/conformance.ts` is the suite every
 * implementation must pass.
 *
 * Durability contract: when {@link ObjectWriter.commit} resolves, the object's bytes and its
 * index entry are on stable storage (fsynced); only then may the receiver answer Success.
 */

/**
 * Facts about a stored object. UIDs, sizes and keyed hashes: no patient data is kept in the
 * index, except the Patient ID in `patientRef` where a site set `audit.patientId: clear`.
 */
export interface ObjectInfo {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  studyInstanceUid?: string | undefined;
  seriesInstanceUid?: string | undefined;
  /** Modality (0008,0060), a short code such as CT. */
  modality?: string | undefined;
  /**
   * Keyed hash of the Accession Number (src/security/accession.ts): finds a study by the number
   * a site asks about, without the number lying in clear on the box.
   */
  accessionHash?: string | undefined;
  /**
   * The audit trail's Patient participant ID, made at reception as `audit.patientId` then said
   * (src/security/patient-pseudonym.ts): a keyed pseudonym by default, the Patient ID itself only
   * when a site chose `clear` (then it lies in the index unencrypted, like the trail itself);
   * absent with `none`. The forwarder's audit messages name it.
   */
  patientRef?: string | undefined;
  callingAeTitle: string;
  /** Bytes of the Part 10 file (header + data set). */
  size: number;
  /** SHA-256 of the whole Part 10 file, hex. */
  sha256: string;
  /** Milliseconds since the epoch. */
  receivedAt: number;
  /**
   * Set when the file was replaced by its losslessly compressed form (`spool.compressAtRest`):
   * the syntax and size it was received in. Decoding gives back exactly the received data set.
   */
  receivedTransferSyntaxUid?: string | undefined;
  receivedSize?: number | undefined;
}

export interface SpoolRecord extends ObjectInfo {
  /** Spool-internal id: monotonic, so it also orders objects by arrival. */
  id: string;
  /** Destinations that still have to confirm this object. */
  pending: string[];
  /** When the last destination confirmed it (kept for `spool.keepForwardedHours`). */
  forwardedAt?: number | undefined;
  /**
   * The file was written unencrypted (`spool.encryption.profile` none when it arrived). Part of
   * the authenticated record: a plain file where the record does not say so is a planted or
   * swapped file, corrupt under every profile (record-codec.ts, object-reader.ts).
   */
  plain?: boolean | undefined;
}

/** Streams one incoming object into the spool. Not durable until {@link commit} resolves. */
export interface ObjectWriter {
  /** Queue bytes; false means "stop reading the socket until 'drain'" (backpressure). */
  write(chunk: Buffer): boolean;
  onDrain(fn: () => void): void;
  /** Bytes accepted so far. */
  readonly bytes: number;
  /** Flush, fsync and index; resolves with the durable record. */
  commit(info: Omit<ObjectInfo, 'size' | 'sha256' | 'receivedAt'>): Promise<SpoolRecord>;
  /** Drop the partial object; never throws. */
  abort(): Promise<void>;
}

/**
 * A spooled object whose SHA-256 has been checked, read by position into the caller's buffers
 * (a forwarder reuses two buffers per association: no allocation, no garbage, per chunk).
 */
export interface ObjectReader {
  /** Bytes of the Part 10 file. */
  readonly size: number;
  /**
   * The SHA-256 recorded when the object was received (for callers that verify as they read);
   * '' for a sealed object received without one (its segments are authenticated instead:
   * such a reader is always `verified`).
   */
  readonly sha256: string;
  /** True when the spool has already checked the bytes against `sha256`. */
  readonly verified: boolean;
  /** Read up to `buf.length` bytes at `position`; resolves with the count (0 at the end). */
  read(buf: Buffer, position: number): Promise<number>;
  close(): Promise<void>;
}

export interface Claim {
  record: SpoolRecord;
  destination: string;
  /** Delivery attempts before this one. */
  attempts: number;
}

export interface DeadLetter {
  id: string;
  destination: string;
  sopInstanceUid: string;
  sopClassUid: string;
  /** The study it belongs to (dead letters made before this field: absent). */
  studyInstanceUid?: string | undefined;
  reason: string;
  status?: number | undefined;
  at: number;
  /**
   * The destination's Error Comment (0000,0902), free text that may name a patient: its length,
   * and under an encryption profile the text sealed with a key derived from the device key
   * (base64, `pacs-edge dead-letter show` opens it). Never in clear.
   */
  comment?: { length: number; sealed?: string | undefined } | undefined;
}

export interface DestinationStats {
  name: string;
  pending: number;
  pendingBytes: number;
  deadLetter: number;
  oldestPendingSeconds: number;
}

export interface SpoolStats {
  objects: number;
  bytes: number;
  /** Objects kept but not sent because their file cannot be opened (see {@link RecoveryReport.unreadable}). */
  unreadable?: number | undefined;
  destinations: DestinationStats[];
}

/** What recovery found when the spool was opened. */
export interface RecoveryReport {
  /** Objects indexed and present. */
  recovered: number;
  recoveredBytes: number;
  /** Files without a committed index entry (partial receptions, never acknowledged): removed. */
  discardedPartials: number;
  discardedBytes: number;
  /**
   * Acknowledged objects whose file is missing or fails its size/checksum check: they cannot be
   * delivered as received. Kept with their index entry (and file, if any) as dead letters
   * (`corrupt: …`) for every destination still owed them, never deleted by recovery.
   */
  lost: { id: string; sopInstanceUid: string; reason: string }[];
  /**
   * Objects whose file cannot be opened this run (no key, another key, unknown format, damaged
   * index entry): left untouched and queued in the index, not handed to any destination until a
   * start can open them.
   */
  unreadable: { id: string; sopInstanceUid: string; reason: string }[];
  /** Queue entries pointing to no object, removed. */
  danglingQueueEntries: number;
  /**
   * Of `lost` and `unreadable`, those changed on the card by someone without the device key: an
   * index record that fails its MAC or has none after the index was authenticated, a plain file
   * where the record says sealed. The gateway raises a Security Alert for them.
   */
  tampered?: { id: string; reason: string }[] | undefined;
}

/** How long {@link Spool.handedOver} remembers a delivered object (7 days). */
export const HANDED_OVER_KEEP_MS = 7 * 24 * 3600 * 1000;

export interface Spool {
  open(): Promise<RecoveryReport>;
  close(): Promise<void>;

  /**
   * Start receiving an object. `header` is the Part 10 preamble + File Meta built by the
   * receiver; `hint` is what the command set already says of it (the SOP Instance UID lets a
   * sealing spool hash only a re-send, the one case where the digest is needed).
   */
  begin(header: Buffer, hint?: { sopInstanceUid: string }): Promise<ObjectWriter>;

  /** Up to `max` objects for a destination, oldest first, not already claimed. */
  claim(destination: string, max: number): Promise<Claim[]>;
  /**
   * The object's bytes, after its SHA-256 was checked; rejects when the check fails. With
   * `verify: 'caller'` the check is left to the caller, who hashes the bytes as it reads them
   * and must not complete delivery unless they match `sha256` (one read instead of two). With
   * `verify: 'memory'` the object is read, decrypted and checked whole on a worker thread and
   * held in memory (the forwarder's prefetch, src/forward/prefetch.ts).
   */
  read(id: string, opts?: { verify?: 'spool' | 'caller' | 'memory' }): Promise<ObjectReader>;
  /**
   * Where the object's Part 10 file lies, for a codec worker that reads and checks it itself.
   * Absent for a spool without files (the object is then sent only in its stored syntax).
   */
  filePath?(id: string): string;
  /** The destination has the object; when no destination is left, it is removed. */
  ack(destination: string, id: string): Promise<void>;
  /** {@link ack} for several objects in one index write (batched acknowledgements, in order). */
  ackMany(destination: string, ids: readonly string[]): Promise<void>;
  /** Delivery failed transiently: the object goes back to its place, with one more attempt counted. */
  nack(destination: string, id: string, reason: string): Promise<void>;
  /** Give a claim back untried (its place and attempt count unchanged). */
  unclaim(destination: string, id: string): Promise<void>;
  /** Delivery failed permanently: park it on the destination's dead-letter list. */
  /** `peerComment`: the destination's Error Comment, kept only sealed (see {@link DeadLetter.comment}). */
  deadLetter(destination: string, id: string, reason: string, status?: number, peerComment?: string): Promise<void>;
  listDeadLetters(destination?: string): Promise<DeadLetter[]>;
  /** Put dead letters (all of a destination's, or the given ids) back in its queue, in id order. Returns how many. */
  retryDeadLetters(destination: string, ids?: readonly string[]): Promise<number>;
  /** Give up on dead letters for good: the destination no longer owes them (the object goes when no destination does). */
  purgeDeadLetters(destination: string, ids?: readonly string[]): Promise<number>;
  /** Called whenever objects are queued for a destination (new object, dead letter retried). */
  onEnqueue(fn: (destination: string) => void): void;

  find(sopInstanceUid: string): Promise<SpoolRecord | undefined>;
  /**
   * When every destination confirmed the object with this SOP Instance UID (milliseconds since
   * the epoch), remembered for {@link HANDED_OVER_KEEP_MS} after the object itself has gone:
   * what a Storage Commitment request arriving after the forward needs to know.
   */
  handedOver(sopInstanceUid: string): Promise<number | undefined>;
  /** Replacing object files by a compressed form; absent for a spool that cannot (see at-rest.ts). */
  rewriter?: SpoolRewriter;
  stats(): SpoolStats;
}

/**
 * Replacing a spooled object's file with an equivalent one (its lossless compressed form),
 * crash-safely. While an object is reserved, no destination is handed it (queues wait at it,
 * so FIFO order holds); an object a destination already holds cannot be reserved.
 */
export interface SpoolRewriter {
  /** The record, reserved; `busy` while a destination holds it, `gone` when delivered or removed. */
  reserve(id: string): Promise<SpoolRecord | 'busy' | 'gone'>;
  /** Replace the file of a reserved object by `bytes` (a Part 10 file in `transferSyntaxUid`). */
  replace(record: SpoolRecord, bytes: Buffer, transferSyntaxUid: string): Promise<SpoolRecord>;
  /** End the reservation (after `replace` or instead of it); waiting destinations are woken. */
  release(id: string): void;
  filePath(id: string): string;
  /** Called with every newly stored object. */
  onStored(fn: (r: SpoolRecord) => void): void;
  /**
   * Called when an object is owed to no destination any more (delivered everywhere, or its last
   * dead letter purged): there is nothing left to compress, whether or not its file is kept.
   */
  onGone(fn: (id: string) => void): void;
  /** Every object in the spool, oldest first. */
  records(): AsyncIterable<SpoolRecord>;
}
