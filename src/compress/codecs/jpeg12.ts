import { codecFailed } from '../codec-error.js';

/**
 * JPEG Extended (Process 2 & 4) with 12-bit samples: sequential DCT, Huffman coded, the one JPEG
 * process the libjpeg-turbo WebAssembly build (8-bit only) cannot decode. Runs in a codec worker
 * only. The inverse DCT is libjpeg's "islow" (jidctint.c, CONST_BITS 13, PASS1_BITS 1 for 12-bit
 * samples), the one DCMTK's dcmdjpeg uses, so the samples match its decoding (measured in
 * test/compress/decode.test.ts). Components must be unsubsampled (every 12-bit DICOM image the
 * tools make is monochrome); anything else is refused, never guessed.
 *
 * @see PS3.5 §8.2.1 and Annex A.4.1; ISO/IEC 10918-1 Annex F (sequential DCT decoding)
 */

const ZIGZAG = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63];

interface Huffman {
  /** code length → (code → value) */
  lookup: Map<number, number>[];
}

interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  dc?: Huffman;
  ac?: Huffman;
  pred: number;
  out: Int32Array;
}

function buildHuffman(counts: Uint8Array, values: Uint8Array): Huffman {
  const lookup: Map<number, number>[] = Array.from({ length: 17 }, () => new Map());
  let code = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    for (let i = 0; i < counts[len - 1]!; i++) lookup[len]!.set(code++, values[k++]!);
    code <<= 1;
  }
  return { lookup };
}

/** Entropy-coded data, with 0xFF00 stuffing removed; a marker ends the segment. */
class Bits {
  private acc = 0;
  private n = 0;
  constructor(
    private readonly s: Uint8Array,
    public pos: number,
  ) {}
  bit(): number {
    if (this.n === 0) {
      let b = 0;
      if (this.pos < this.s.length && this.s[this.pos] === 0xff && this.s[this.pos + 1] !== 0x00) b = 0; // a marker: feed zeros (libjpeg does the same)
      else if (this.pos < this.s.length) {
        b = this.s[this.pos++]!;
        if (b === 0xff) this.pos++; // stuffed zero
      }
      this.acc = b;
      this.n = 8;
    }
    this.n--;
    return (this.acc >> this.n) & 1;
  }
  receive(len: number): number {
    let v = 0;
    for (let i = 0; i < len; i++) v = (v << 1) | this.bit();
    return v;
  }
  decode(h: Huffman): number {
    let code = 0;
    for (let len = 1; len <= 16; len++) {
      code = (code << 1) | this.bit();
      const v = h.lookup[len]!.get(code);
      if (v !== undefined) return v;
    }
    throw codecFailed('JPEG 12-bit: bad Huffman code');
  }
  /** Skip to the next RSTn marker (after a restart interval). */
  restart(): void {
    this.n = 0;
    while (this.pos + 1 < this.s.length && !(this.s[this.pos] === 0xff && this.s[this.pos + 1]! >= 0xd0 && this.s[this.pos + 1]! <= 0xd7)) this.pos++;
    this.pos += 2;
  }
}

const extend = (v: number, t: number) => (t === 0 ? 0 : v < 1 << (t - 1) ? v - (1 << t) + 1 : v);

// jidctint.c constants for CONST_BITS = 13
const C = { f0298: 2446, f0390: 3196, f0541: 4433, f0765: 6270, f0899: 7373, f1175: 9633, f1501: 12299, f1847: 15137, f1961: 16069, f2053: 16819, f2562: 20995, f3072: 25172 };
const descale = (x: number, n: number) => Math.floor((x + 2 ** (n - 1)) / 2 ** n);

/** One 8x8 butterfly of jidctint.c: `get(i)` the i-th input, results through `put(i, value)` before descaling. */
function idct1d(get: (i: number) => number, put: (i: number, v: number) => void): void {
  let z2 = get(2);
  let z3 = get(6);
  let z1 = (z2 + z3) * C.f0541;
  let tmp2 = z1 + z3 * -C.f1847;
  let tmp3 = z1 + z2 * C.f0765;
  z2 = get(0);
  z3 = get(4);
  let tmp0 = (z2 + z3) * 8192;
  let tmp1 = (z2 - z3) * 8192;
  const tmp10 = tmp0 + tmp3;
  const tmp13 = tmp0 - tmp3;
  const tmp11 = tmp1 + tmp2;
  const tmp12 = tmp1 - tmp2;
  tmp0 = get(7);
  tmp1 = get(5);
  tmp2 = get(3);
  tmp3 = get(1);
  z1 = tmp0 + tmp3;
  z2 = tmp1 + tmp2;
  z3 = tmp0 + tmp2;
  let z4 = tmp1 + tmp3;
  const z5 = (z3 + z4) * C.f1175;
  tmp0 *= C.f0298;
  tmp1 *= C.f2053;
  tmp2 *= C.f3072;
  tmp3 *= C.f1501;
  z1 *= -C.f0899;
  z2 *= -C.f2562;
  z3 = z3 * -C.f1961 + z5;
  z4 = z4 * -C.f0390 + z5;
  tmp0 += z1 + z3;
  tmp1 += z2 + z4;
  tmp2 += z2 + z3;
  tmp3 += z1 + z4;
  put(0, tmp10 + tmp3);
  put(7, tmp10 - tmp3);
  put(1, tmp11 + tmp2);
  put(6, tmp11 - tmp2);
  put(2, tmp12 + tmp1);
  put(5, tmp12 - tmp1);
  put(3, tmp13 + tmp0);
  put(4, tmp13 - tmp0);
}

/** Dequantize and inverse-transform one block into `out` (row stride `stride`) at (x, y), clipped to the image. */
function idctBlock(coef: Int32Array, q: Int32Array, out: Int32Array, stride: number, x: number, y: number, w: number, h: number): void {
  const ws = new Float64Array(64);
  for (let c = 0; c < 8; c++) idct1d((i) => coef[i * 8 + c]! * q[i * 8 + c]!, (i, v) => (ws[i * 8 + c] = descale(v, 13 - 1)));
  for (let r = 0; r < 8; r++) {
    if (y + r >= h) break;
    idct1d(
      (i) => ws[r * 8 + i]!,
      (i, v) => {
        if (x + i < w) out[(y + r) * stride + x + i] = Math.min(4095, Math.max(0, descale(v, 13 + 1 + 3) + 2048));
      },
    );
  }
}

/** Decode a 12-bit sequential DCT frame: samples as 16-bit little endian, components interleaved. */
export function jpeg12DecodeFrame(s: Uint8Array): { pixels: Buffer; width: number; height: number; components: number } {
  const qt: Int32Array[] = [];
  const dcT: Huffman[] = [];
  const acT: Huffman[] = [];
  let comps: Component[] = [];
  let width = 0;
  let height = 0;
  let restartInterval = 0;
  let pos = 0;
  for (;;) {
    if (pos + 2 > s.length) throw codecFailed('JPEG 12-bit: frame ends before its end marker');
    if (s[pos] !== 0xff) throw codecFailed('JPEG 12-bit: marker expected');
    const m = s[pos + 1]!;
    if (m === 0xff) {
      pos++;
      continue;
    }
    if (m === 0xd9) break;
    if (m === 0xd8) {
      pos += 2;
      continue;
    }
    if (pos + 4 > s.length) throw codecFailed('JPEG 12-bit: frame ends inside a marker segment');
    const len = (s[pos + 2]! << 8) | s[pos + 3]!;
    const seg = pos + 4;
    const end = pos + 2 + len;
    if (m === 0xdb) {
      for (let p = seg; p < end; ) {
        const pq = s[p]! >> 4;
        const t = new Int32Array(64);
        for (let i = 0; i < 64; i++) t[ZIGZAG[i]!] = pq ? (s[p + 1 + i * 2]! << 8) | s[p + 2 + i * 2]! : s[p + 1 + i]!;
        qt[s[p]! & 15] = t;
        p += 1 + 64 * (pq ? 2 : 1);
      }
    } else if (m === 0xc4) {
      for (let p = seg; p < end; ) {
        const counts = s.subarray(p + 1, p + 17);
        const total = counts.reduce((a, b) => a + b, 0);
        const table = buildHuffman(counts, s.subarray(p + 17, p + 17 + total));
        (s[p]! >> 4 ? acT : dcT)[s[p]! & 15] = table;
        p += 17 + total;
      }
    } else if (m === 0xdd) restartInterval = (s[seg]! << 8) | s[seg + 1]!;
    else if (m === 0xc1 || m === 0xc0) {
      if (s[seg] !== 12) throw codecFailed(`JPEG 12-bit decoder given ${s[seg]}-bit samples`);
      height = (s[seg + 1]! << 8) | s[seg + 2]!;
      width = (s[seg + 3]! << 8) | s[seg + 4]!;
      comps = Array.from({ length: s[seg + 5]! }, (_, i) => ({ id: s[seg + 6 + i * 3]!, h: s[seg + 7 + i * 3]! >> 4, v: s[seg + 7 + i * 3]! & 15, tq: s[seg + 8 + i * 3]!, pred: 0, out: new Int32Array(0) }));
      if (!width || !height || comps.some((c) => c.h !== 1 || c.v !== 1)) throw codecFailed('JPEG 12-bit: subsampled components are not decoded by this release');
      for (const c of comps) c.out = new Int32Array(width * height);
    } else if (m >= 0xc2 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) throw codecFailed(`JPEG 12-bit: SOF${m - 0xc0} is not sequential Huffman DCT`);
    else if (m === 0xda) {
      const ns = s[seg]!;
      const scan = Array.from({ length: ns }, (_, i) => {
        const c = comps.find((x) => x.id === s[seg + 1 + i * 2]);
        if (!c) throw codecFailed('JPEG 12-bit: scan names an unknown component');
        c.dc = dcT[s[seg + 2 + i * 2]! >> 4];
        c.ac = acT[s[seg + 2 + i * 2]! & 15];
        c.pred = 0;
        return c;
      });
      pos = decodeScan(s, end, scan, qt, width, height, restartInterval);
      continue;
    }
    pos = end;
  }
  const out = Buffer.alloc(width * height * comps.length * 2);
  for (let p = 0; p < width * height; p++) for (const [i, c] of comps.entries()) out.writeUInt16LE(c.out[p]!, (p * comps.length + i) * 2);
  return { pixels: out, width, height, components: comps.length };
}

/** One scan's entropy-coded data; returns the position of the marker after it. */
function decodeScan(s: Uint8Array, start: number, scan: Component[], qt: Int32Array[], width: number, height: number, restartInterval: number): number {
  const bits = new Bits(s, start);
  const bx = Math.ceil(width / 8);
  const by = Math.ceil(height / 8);
  const coef = new Int32Array(64);
  let mcus = 0;
  for (let y = 0; y < by; y++) {
    for (let x = 0; x < bx; x++) {
      if (restartInterval && mcus > 0 && mcus % restartInterval === 0) {
        bits.restart();
        for (const c of scan) c.pred = 0;
      }
      mcus++;
      for (const c of scan) {
        if (!c.dc || !c.ac || !qt[c.tq]) throw codecFailed('JPEG 12-bit: a table the scan needs is missing');
        coef.fill(0);
        const t = bits.decode(c.dc);
        c.pred += extend(bits.receive(t), t);
        coef[0] = c.pred;
        for (let k = 1; k < 64; ) {
          const rs = bits.decode(c.ac);
          const r = rs >> 4;
          const z = rs & 15;
          if (z) {
            k += r;
            if (k > 63) throw codecFailed('JPEG 12-bit: coefficient index out of range');
            coef[ZIGZAG[k]!] = extend(bits.receive(z), z);
            k++;
          } else if (r === 15) k += 16;
          else break;
        }
        idctBlock(coef, qt[c.tq]!, c.out, width, x * 8, y * 8, width, height);
      }
    }
  }
  // The scan's data ends at the next marker that is not a stuffed zero or a restart marker.
  let p = bits.pos;
  while (p + 1 < s.length && !(s[p] === 0xff && s[p + 1] !== 0 && !(s[p + 1]! >= 0xd0 && s[p + 1]! <= 0xd7))) p++;
  return p;
}
