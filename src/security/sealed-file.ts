import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual, type CipherGCM, type DecipherGCM } from 'node:crypto';
import { PacsEdgeError } from '../errors.js';

/**
 * Encryption at rest of spooled objects: a "sealed" file, written as a stream and read at any
 * position, with its own data key.
 *
 * Layout: a header, then the plaintext cut into segments of {@link SEGMENT_BYTES} (the last one
 * shorter, possibly empty), each encrypted and authenticated on its own:
 *
 *     "PESE" | version 1 | profile | log2(segment size) | wrapped-key length | 12-byte nonce | wrapped data key
 *     segment 0: ciphertext | tag      segment 1: …      last segment: ciphertext | tag (marked final)
 *
 * Each segment's authentication covers the whole header (so segments cannot move between files),
 * its index (no reordering) and a final flag (no truncation, no appending): a flipped byte,
 * a missing or extra segment is found before any of the segment's bytes are used. The data
 * key is random per file and stored only wrapped by the key-encryption key (derived from the
 * device key, kept outside the spool): deleting the file destroys its key.
 *
 * Profiles:
 * - `aes-256-gcm`: AES-256-GCM segments (96-bit nonce = file nonce XOR segment index, 128-bit
 *   tag); the data key wrapped with AES-256-GCM.
 * - `gm` (GB/T 39786 commercial cryptography): SM4-CTR + HMAC-SM3, encrypt-then-MAC (256-bit
 *   tag); the data key (SM4 key + HMAC key) wrapped the same way. OpenSSL (Node 20 and 24) has
 *   `sm4-ctr` and `sm3` but not `sm4-gcm`, hence the composition.
 * - `chacha20-poly1305` (RFC 8439): laid out exactly as aes-256-gcm (96-bit nonce = file nonce
 *   XOR segment index, 128-bit tag, the data key wrapped with the same AEAD), for boards without
 *   AES instructions (ARMv8 without the crypto extensions, e.g. Raspberry Pi 4), where AES-GCM
 *   in software is several times slower than ChaCha20-Poly1305 (docs/security.md).
 *
 * Pure functions and small classes on Buffers: used by the spool (main thread) and by the
 * hash and codec workers, which read files themselves.
 *
 * @see NIST SP 800-38D (GCM), RFC 8439 (ChaCha20-Poly1305), GB/T 32907 (SM4), GB/T 32905 (SM3), RFC 2104 (HMAC)
 */
export type SealProfile = 'aes-256-gcm' | 'gm' | 'chacha20-poly1305';

/** Every sealing profile, in the order of their header ids. */
export const SEAL_PROFILES: readonly SealProfile[] = ['aes-256-gcm', 'gm', 'chacha20-poly1305'];

/**
 * Key-encryption key material: 32 bytes for aes-256-gcm and chacha20-poly1305; 16 (SM4) + 32
 * (HMAC-SM3) for gm. New files are sealed with `profile`/`kek`; `others` opens files sealed
 * under another profile (written before `spool.encryption.profile` was changed), so a change
 * never strands an object.
 */
export interface SealKey {
  profile: SealProfile;
  kek: Buffer;
  others?: Partial<Record<SealProfile, Buffer>> | undefined;
}

export const SEALED_MAGIC = Buffer.from('PESE', 'latin1');
export const SEGMENT_BYTES = 64 * 1024;
const VERSION = 1;
const PROFILE_ID: Record<SealProfile, number> = { 'aes-256-gcm': 1, gm: 2, 'chacha20-poly1305': 3 };
const FIXED = 20; // magic 4, version 1, profile 1, log2 1, wrapped length 1, nonce 12
const TAG: Record<SealProfile, number> = { 'aes-256-gcm': 16, gm: 32, 'chacha20-poly1305': 16 };
const DATA_KEY: Record<SealProfile, number> = { 'aes-256-gcm': 32, gm: 48, 'chacha20-poly1305': 32 };
const WRAPPED: Record<SealProfile, number> = { 'aes-256-gcm': 12 + 32 + 16, gm: 16 + 48 + 32, 'chacha20-poly1305': 12 + 32 + 16 };

/** The profile a sealed file's header names (its byte 5); undefined for an unknown id or a plain file. */
export function profileOfHead(head: Buffer): SealProfile | undefined {
  if (!isSealed(head) || head.length < 6) return undefined;
  return SEAL_PROFILES.find((p) => PROFILE_ID[p] === head[5]);
}

export function sealedHeaderBytes(profile: SealProfile): number {
  return FIXED + WRAPPED[profile];
}

/** Enough of a file's start to hold the header of any profile. */
export const SEALED_HEAD_BYTES = FIXED + Math.max(...Object.values(WRAPPED));

/** The sealed file size of `plain` bytes (headers and tags included). */
export function sealedSize(plain: number, profile: SealProfile): number {
  const segments = Math.max(1, Math.ceil(plain / SEGMENT_BYTES));
  return sealedHeaderBytes(profile) + plain + segments * TAG[profile];
}

/** True when the buffer starts like a sealed file. */
export function isSealed(head: Buffer): boolean {
  return head.length >= 4 && head.subarray(0, 4).equals(SEALED_MAGIC);
}

function corrupt(message: string): PacsEdgeError {
  return new PacsEdgeError('SPOOL_CORRUPT', message, { retryable: false });
}

/** Split the gm KEK / data key into its SM4 and HMAC-SM3 parts. */
const gmParts = (k: Buffer) => ({ enc: k.subarray(0, 16), mac: k.subarray(16, 48) });

/** The profiles that are one AEAD with a 96-bit nonce and a 128-bit tag: same layout, same code. */
type AeadProfile = Exclude<SealProfile, 'gm'>;
const isAead = (p: SealProfile): p is AeadProfile => p !== 'gm';

/** AES-256-GCM or ChaCha20-Poly1305 (their Node types differ only in name). */
function aeadCipher(p: AeadProfile, key: Buffer, iv: Buffer): CipherGCM {
  return p === 'aes-256-gcm' ? createCipheriv(p, key, iv) : createCipheriv(p, key, iv, { authTagLength: 16 });
}
function aeadDecipher(p: AeadProfile, key: Buffer, iv: Buffer): DecipherGCM {
  return p === 'aes-256-gcm' ? createDecipheriv(p, key, iv) : createDecipheriv(p, key, iv, { authTagLength: 16 });
}

function wrap(key: SealKey, dataKey: Buffer, aad: Buffer): Buffer {
  if (isAead(key.profile)) {
    const iv = randomBytes(12);
    const c = aeadCipher(key.profile, key.kek, iv);
    c.setAAD(aad);
    const ct = Buffer.concat([c.update(dataKey), c.final()]);
    return Buffer.concat([iv, ct, c.getAuthTag()]);
  }
  const { enc, mac } = gmParts(key.kek);
  const iv = randomBytes(16);
  const c = createCipheriv('sm4-ctr', enc, iv);
  const ct = Buffer.concat([c.update(dataKey), c.final()]);
  const tag = createHmac('sm3', mac).update(aad).update(iv).update(ct).digest();
  return Buffer.concat([iv, ct, tag]);
}

function unwrap(key: SealKey, wrapped: Buffer, aad: Buffer): Buffer {
  if (isAead(key.profile)) {
    const d = aeadDecipher(key.profile, key.kek, wrapped.subarray(0, 12));
    d.setAAD(aad);
    d.setAuthTag(wrapped.subarray(44, 60));
    try {
      return Buffer.concat([d.update(wrapped.subarray(12, 44)), d.final()]);
    } catch {
      throw corrupt('sealed file: its data key does not unwrap (damaged header, or another device key)');
    }
  }
  const { enc, mac } = gmParts(key.kek);
  const iv = wrapped.subarray(0, 16);
  const ct = wrapped.subarray(16, 64);
  const tag = createHmac('sm3', mac).update(aad).update(iv).update(ct).digest();
  if (!timingSafeEqual(tag, wrapped.subarray(64, 96))) throw corrupt('sealed file: its data key does not unwrap (damaged header, or another device key)');
  const d = createDecipheriv('sm4-ctr', enc, iv);
  return Buffer.concat([d.update(ct), d.final()]);
}

/** What both directions need to know about one file. */
class SegmentCipher {
  constructor(
    readonly profile: SealProfile,
    private readonly dataKey: Buffer,
    readonly header: Buffer,
  ) {}

  private get nonce(): Buffer {
    return this.header.subarray(8, 20);
  }

  private aad(index: number, final: boolean): Buffer {
    const tail = Buffer.alloc(5);
    tail.writeUInt32BE(index, 0);
    tail[4] = final ? 1 : 0;
    return Buffer.concat([this.header, tail]);
  }

  private iv(index: number): Buffer {
    if (isAead(this.profile)) {
      const iv = Buffer.from(this.nonce);
      iv.writeUInt32BE((iv.readUInt32BE(8) ^ index) >>> 0, 8);
      return iv;
    }
    // SM4-CTR: nonce[0..8] | index | 32-bit block counter from 0 (a segment is 4096 blocks).
    const iv = Buffer.alloc(16);
    this.nonce.copy(iv, 0, 0, 8);
    iv.writeUInt32BE(index, 8);
    return iv;
  }

  /**
   * Ciphertext and tag as separate buffers, for a vectored write: no copy of the segment
   * (a 1 GiB object is 16 384 segments; every extra copy is 1 GiB more for the collector).
   */
  seal(index: number, plain: Buffer, final: boolean): [Buffer, Buffer] {
    const aad = this.aad(index, final);
    if (isAead(this.profile)) {
      const c = aeadCipher(this.profile, this.dataKey, this.iv(index));
      c.setAAD(aad);
      const ct = c.update(plain);
      c.final(); // GCM and ChaCha20-Poly1305: no bytes held back
      return [ct, c.getAuthTag()];
    }
    const { enc, mac } = gmParts(this.dataKey);
    const c = createCipheriv('sm4-ctr', enc, this.iv(index));
    const ct = c.update(plain); // CTR: no bytes held back
    c.final();
    return [ct, createHmac('sm3', mac).update(aad).update(ct).digest()];
  }

  open(index: number, sealed: Buffer, final: boolean): Buffer {
    const t = TAG[this.profile];
    if (sealed.length < t) throw corrupt(`sealed file: segment ${index} is cut short`);
    const ct = sealed.subarray(0, sealed.length - t);
    const tag = sealed.subarray(sealed.length - t);
    const aad = this.aad(index, final);
    if (isAead(this.profile)) {
      const d = aeadDecipher(this.profile, this.dataKey, this.iv(index));
      d.setAAD(aad);
      d.setAuthTag(tag);
      const plain = d.update(ct);
      try {
        d.final(); // neither AEAD holds anything back; final() checks the tag
      } catch {
        throw corrupt(`sealed file: segment ${index} fails its authentication (changed, moved or truncated)`);
      }
      return plain;
    }
    const { enc, mac } = gmParts(this.dataKey);
    if (!timingSafeEqual(createHmac('sm3', mac).update(aad).update(ct).digest(), tag)) {
      throw corrupt(`sealed file: segment ${index} fails its authentication (changed, moved or truncated)`);
    }
    const d = createDecipheriv('sm4-ctr', enc, this.iv(index));
    const plain = d.update(ct); // CTR holds nothing back
    d.final();
    return plain;
  }
}

/** Parse and check a header; returns the cipher of its file. */
function openHeader(key: SealKey, head: Buffer): SegmentCipher {
  if (!isSealed(head) || head.length < FIXED) throw corrupt('not a sealed spool file (no PESE header)');
  if (head[4] !== VERSION) throw corrupt(`sealed file version ${head[4]} is not supported`);
  const profile = profileOfHead(head);
  if (!profile) throw corrupt(`sealed file profile ${head[5]} is unknown`);
  const kek = profile === key.profile ? key.kek : key.others?.[profile];
  if (!kek) throw corrupt(`sealed file uses profile ${profile}, and no key for it is at hand`);
  if (head[6] !== Math.log2(SEGMENT_BYTES) || head[7] !== WRAPPED[profile]) throw corrupt('sealed file header has unexpected sizes');
  const header = head.subarray(0, FIXED + WRAPPED[profile]);
  if (header.length < FIXED + WRAPPED[profile]) throw corrupt('sealed file header is cut short');
  const dataKey = unwrap({ profile, kek }, header.subarray(FIXED), header.subarray(0, FIXED));
  return new SegmentCipher(profile, dataKey, Buffer.from(header));
}

/**
 * Why a file's header cannot be opened with `key`, without reading or changing anything else:
 * `undefined` when it can (or the file is plain). Recovery asks this of every spooled file
 * before it decides anything, so that a missing or wrong device key is told apart from damage
 * and never mistaken for it.
 *
 * - `no-key`: the file is sealed and no key is at hand;
 * - `key`: the data key does not unwrap under this key (another device key, or a damaged header:
 *   the two cannot be told apart from one file, which is why recovery looks at all of them);
 * - `format`: an unknown version, profile or layout (a newer release wrote it).
 */
export function sealedHeaderProblem(key: SealKey | undefined, head: Buffer): { kind: 'no-key' | 'key' | 'format'; message: string } | undefined {
  if (!isSealed(head)) return undefined;
  if (head.length < FIXED) return { kind: 'format', message: 'sealed file header is cut short' };
  if (head[4] !== VERSION) return { kind: 'format', message: `sealed file version ${head[4]} is not supported by this release` };
  const profile = profileOfHead(head);
  if (!profile) return { kind: 'format', message: `sealed file profile ${head[5]} is unknown to this release` };
  if (head[6] !== Math.log2(SEGMENT_BYTES) || head[7] !== WRAPPED[profile] || head.length < FIXED + WRAPPED[profile]) return { kind: 'format', message: 'sealed file header has unexpected sizes' };
  if (!key) return { kind: 'no-key', message: 'sealed file, and no device key is at hand' };
  try {
    openHeader(key, head);
    return undefined;
  } catch (err) {
    return { kind: 'key', message: (err as Error).message };
  }
}

/**
 * Seals a stream: `push` plaintext as it comes, take back whole sealed segments; `final()` gives
 * the last (final-marked) segment. The header is the first thing to write.
 */
export class Sealer {
  readonly header: Buffer;
  private readonly cipher: SegmentCipher;
  private parts: Buffer[] = [];
  private partBytes = 0;
  private index = 0;
  /** Plaintext bytes pushed so far. */
  plainBytes = 0;

  constructor(key: SealKey) {
    const fixed = Buffer.alloc(FIXED);
    SEALED_MAGIC.copy(fixed, 0);
    fixed[4] = VERSION;
    fixed[5] = PROFILE_ID[key.profile];
    fixed[6] = Math.log2(SEGMENT_BYTES);
    fixed[7] = WRAPPED[key.profile];
    randomBytes(12).copy(fixed, 8);
    const dataKey = randomBytes(DATA_KEY[key.profile]);
    this.header = Buffer.concat([fixed, wrap(key, dataKey, fixed)]);
    this.cipher = new SegmentCipher(key.profile, dataKey, this.header);
  }

  /** Whole sealed segments, each as [ciphertext, tag]: write them in order. */
  push(plain: Buffer): Buffer[] {
    this.plainBytes += plain.length;
    const out: Buffer[] = [];
    let off = 0;
    while (off < plain.length) {
      // A full segment is sealed only once more bytes follow: the last one must carry the final flag.
      if (this.partBytes === SEGMENT_BYTES) out.push(...this.sealPart(false));
      const take = Math.min(SEGMENT_BYTES - this.partBytes, plain.length - off);
      this.parts.push(plain.subarray(off, off + take));
      this.partBytes += take;
      off += take;
    }
    return out;
  }

  /** The last segment (possibly empty), marked final, as [ciphertext, tag]. */
  final(): Buffer[] {
    return this.sealPart(true);
  }

  private sealPart(final: boolean): [Buffer, Buffer] {
    // A segment that arrived in one piece is encrypted from it directly.
    const plain = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partBytes);
    this.parts = [];
    this.partBytes = 0;
    return this.cipher.seal(this.index++, plain, final);
  }
}

/** Seal a whole buffer at once (the compression-at-rest rewriter). */
export function sealBuffer(key: SealKey, plain: Buffer): Buffer {
  const s = new Sealer(key);
  return Buffer.concat([s.header, ...s.push(plain), ...s.final()]);
}

/** Open a whole sealed file held in memory (the workers). @throws PacsEdgeError SPOOL_CORRUPT */
export function unsealBuffer(key: SealKey, file: Buffer): Buffer {
  const cipher = openHeader(key, file);
  const h = cipher.header.length;
  const t = TAG[cipher.profile];
  const out: Buffer[] = [];
  const segments = segmentCount(file.length - h, t);
  for (let i = 0; i < segments; i++) {
    const start = h + i * (SEGMENT_BYTES + t);
    const end = Math.min(file.length, start + SEGMENT_BYTES + t);
    out.push(cipher.open(i, file.subarray(start, end), i === segments - 1));
  }
  return Buffer.concat(out);
}

/** Segments in `body` bytes of a sealed file (everything after the header). */
function segmentCount(body: number, tag: number): number {
  if (body < tag) throw corrupt('sealed file has no final segment');
  return Math.floor(body / (SEGMENT_BYTES + tag)) + (body % (SEGMENT_BYTES + tag) === 0 ? 0 : 1);
}

/** The plaintext size of a sealed file of `fileSize` bytes. */
export function plainSizeOf(fileSize: number, profile: SealProfile): number {
  const body = fileSize - sealedHeaderBytes(profile);
  return body - segmentCount(body, TAG[profile]) * TAG[profile];
}

/**
 * Positional reads of a sealed file through a `pread`-like function: each read decrypts and
 * authenticates the segments it covers (one segment is cached, so sequential reads decrypt each
 * segment once).
 */
export class SealedReader {
  private cached: { index: number; plain: Buffer } | undefined;
  private constructor(
    private readonly cipher: SegmentCipher,
    private readonly fileSize: number,
    private readonly pread: (buf: Buffer, position: number) => Promise<number>,
    readonly size: number,
  ) {}

  static async open(key: SealKey, fileSize: number, pread: (buf: Buffer, position: number) => Promise<number>): Promise<SealedReader> {
    // The header of the longest profile: the file's own may be any.
    const head = Buffer.alloc(SEALED_HEAD_BYTES);
    const n = await pread(head, 0);
    const cipher = openHeader(key, head.subarray(0, n));
    return new SealedReader(cipher, fileSize, pread, plainSizeOf(fileSize, cipher.profile));
  }

  /**
   * Open from a header already read (at least {@link SEALED_HEAD_BYTES} of the file, or all of a
   * shorter one), for a file whose plaintext size is known: no size lookup, no second read. A
   * file shorter than that size fails when its missing segment is read.
   */
  static fromHead(key: SealKey, head: Buffer, plainSize: number, pread: (buf: Buffer, position: number) => Promise<number>): SealedReader {
    const cipher = openHeader(key, head);
    return new SealedReader(cipher, sealedSize(plainSize, cipher.profile), pread, plainSize);
  }

  /**
   * Read up to `buf.length` plaintext bytes at `position`; resolves with the count (0 at the
   * end). The sealed segments the range needs come in one read (a forwarder asks for 1 MiB: one
   * read, not sixteen trips to the thread pool), then are opened one by one.
   */
  async read(buf: Buffer, position: number): Promise<number> {
    if (position >= this.size || buf.length === 0) return 0;
    const end = Math.min(this.size, position + buf.length);
    const first = Math.floor(position / SEGMENT_BYTES);
    const last = Math.floor((end - 1) / SEGMENT_BYTES);
    const stride = SEGMENT_BYTES + TAG[this.cipher.profile];
    const h = this.cipher.header.length;
    // A sequential reader's first segment may be the one cached at the end of its last read.
    const from = this.cached?.index === first ? first + 1 : first;
    let span: Buffer | undefined;
    if (from <= last) {
      const start = h + from * stride;
      span = Buffer.allocUnsafe(Math.min(this.fileSize, h + (last + 1) * stride) - start);
      for (let got = 0; got < span.length; ) {
        const n = await this.pread(span.subarray(got), start + got);
        if (n === 0) throw corrupt(`sealed file: segment ${from + Math.floor(got / stride)} is cut short`);
        got += n;
      }
    }
    let copied = 0;
    for (let index = first; index <= last; index++) {
      let plain: Buffer;
      if (this.cached?.index === index) plain = this.cached.plain;
      else {
        const off = (index - from) * stride;
        const sealed = span!.subarray(off, Math.min(span!.length, off + stride));
        plain = this.cipher.open(index, sealed, h + index * stride + sealed.length >= this.fileSize);
        this.cached = { index, plain };
      }
      const segStart = index * SEGMENT_BYTES;
      copied += plain.copy(buf, copied, Math.max(position, segStart) - segStart, Math.min(end, segStart + plain.length) - segStart);
    }
    return copied;
  }
}
