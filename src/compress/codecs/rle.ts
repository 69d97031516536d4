import { codecFailed } from '../codec-error.js';
/**
 * RLE Lossless: each byte plane of each sample is a segment (most significant byte first,
 * sample by sample), PackBits-coded row by row, behind a 64-byte header of the segment count
 * and up to 15 offsets.
 *
 * @see PS3.5 Annex G (RLE Compression), §G.3.1 (one row never crosses into the next), §G.5 (header)
 */
export interface RleFrameInfo {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bytesPerSample: number;
  /** Layout of the uncompressed frame: false interleaved (RGBRGB…), true planar (RR…GG…BB…). */
  planar: boolean;
}

const MAX_SEGMENTS = 15;

/** Byte index of (pixel p, sample s, byte k counted from the most significant) in the frame. */
function indexer(info: RleFrameInfo): (p: number, s: number, k: number) => number {
  const { samplesPerPixel: spp, bytesPerSample: bps, rows, columns } = info;
  const pixels = rows * columns;
  return info.planar ? (p, s, k) => (s * pixels + p) * bps + (bps - 1 - k) : (p, s, k) => (p * spp + s) * bps + (bps - 1 - k);
}

export function rleEncodeFrame(frame: Uint8Array, info: RleFrameInfo): Buffer {
  const { rows, columns, samplesPerPixel: spp, bytesPerSample: bps } = info;
  const segments = spp * bps;
  if (segments > MAX_SEGMENTS) throw codecFailed(`RLE allows ${MAX_SEGMENTS} segments, this image needs ${segments}`);
  const at = indexer(info);
  const plane = new Uint8Array(columns);
  // Generous bound: a lone literal byte between two replicate pairs costs 2 bytes for 1, so
  // a row never exceeds twice its length (writes past a Buffer's end would be dropped silently).
  const out = Buffer.allocUnsafe(64 + segments * (rows * (2 * columns + 2) + 1));
  out.fill(0, 0, 64);
  out.writeUInt32LE(segments, 0);
  let pos = 64;
  for (let s = 0; s < spp; s++) {
    for (let k = 0; k < bps; k++) {
      const seg = s * bps + k;
      out.writeUInt32LE(pos, 4 + seg * 4);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < columns; c++) plane[c] = frame[at(r * columns + c, s, k)]!;
        pos = packBitsRow(plane, out, pos);
      }
      if ((pos - 64) % 2) out[pos++] = 0; // segments are even length (PS3.5 §G.5)
    }
  }
  return out.subarray(0, pos);
}

/**
 * PackBits one row into `out` at `pos`; returns the new position. A replicate run is used for
 * 3 or more equal bytes: a pair costs as much inside a literal run as on its own, and ending
 * the literal run for it would cost one more header byte.
 */
function packBitsRow(row: Uint8Array, out: Buffer, pos: number): number {
  const n = row.length;
  const tripleAt = (j: number) => j + 2 < n && row[j] === row[j + 1] && row[j] === row[j + 2];
  let i = 0;
  while (i < n) {
    if (tripleAt(i)) {
      let run = 3;
      while (i + run < n && run < 128 && row[i + run] === row[i]) run++;
      out[pos++] = 257 - run; // -(run-1) as a signed byte
      out[pos++] = row[i]!;
      i += run;
      continue;
    }
    // A literal run: up to 128 bytes, ending where a run of 3 equal bytes begins.
    const start = i;
    do i++;
    while (i < n && i - start < 128 && !tripleAt(i));
    out[pos++] = i - start - 1;
    for (let j = start; j < i; j++) out[pos++] = row[j]!;
  }
  return pos;
}

export function rleDecodeFrame(data: Uint8Array, info: RleFrameInfo): Buffer {
  const { rows, columns, samplesPerPixel: spp, bytesPerSample: bps } = info;
  const pixels = rows * columns;
  if (data.length < 64) throw codecFailed('RLE frame shorter than its header');
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const segments = view.readUInt32LE(0);
  if (segments !== spp * bps) throw codecFailed(`RLE frame has ${segments} segments, the image needs ${spp * bps}`);
  const at = indexer(info);
  const out = Buffer.alloc(pixels * spp * bps);
  const plane = new Uint8Array(pixels);
  for (let seg = 0; seg < segments; seg++) {
    const start = view.readUInt32LE(4 + seg * 4);
    const end = seg + 1 < segments ? view.readUInt32LE(8 + seg * 4) : data.length;
    if (start < 64 || end > data.length || start > end) throw codecFailed(`RLE segment ${seg + 1} offsets out of range`);
    unpackBits(data, start, end, plane);
    const s = Math.floor(seg / bps);
    const k = seg % bps;
    for (let p = 0; p < pixels; p++) out[at(p, s, k)] = plane[p]!;
  }
  return out;
}

function unpackBits(src: Uint8Array, pos: number, end: number, dst: Uint8Array): void {
  let o = 0;
  while (o < dst.length && pos < end) {
    const h = src[pos++]!;
    if (h < 128) {
      const n = h + 1;
      if (pos + n > end || o + n > dst.length) throw codecFailed('RLE literal run past the end');
      dst.set(src.subarray(pos, pos + n), o);
      pos += n;
      o += n;
    } else if (h > 128) {
      const n = 257 - h;
      if (pos >= end || o + n > dst.length) throw codecFailed('RLE replicate run past the end');
      dst.fill(src[pos++]!, o, o + n);
      o += n;
    }
    // 128 (-128): no operation
  }
  if (o !== dst.length) throw codecFailed(`RLE segment decodes to ${o} bytes, ${dst.length} expected`);
}
