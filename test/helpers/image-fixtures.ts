import { type El, encodeDataset, ExplicitLE, part10, SECONDARY_CAPTURE, testUid } from './dicom-builder.js';

/**
 * Image fixtures for the codec tests: any size, bit depth, signedness, colour layout and frame
 * count, with pixels that look like an image (smooth gradients, edges, a little seeded noise)
 * so that a compressor has real work to do and a wrong bit shows.
 */
export interface ImageSpec {
  rows: number;
  cols: number;
  samples: 1 | 3;
  bits: 8 | 16;
  signed?: boolean;
  /** 0 interleaved, 1 planar (colour only). */
  planar?: 0 | 1;
  frames?: number;
  photometric?: string;
  bitsStored?: number;
}

function us(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n, 0);
  return b;
}

const pad = (s: string, c = ' ') => (s.length % 2 ? s + c : s);

/** Deterministic pixel bytes for `spec` (little endian samples). */
export function pixels(spec: ImageSpec, seed = 1): Buffer {
  const frames = spec.frames ?? 1;
  const bps = spec.bits / 8;
  const n = spec.rows * spec.cols;
  const out = Buffer.alloc(n * spec.samples * bps * frames);
  let s = seed >>> 0;
  const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  const stored = spec.bitsStored ?? (spec.bits === 16 ? 12 : 8);
  const max = (1 << stored) - 1;
  for (let f = 0; f < frames; f++) {
    for (let p = 0; p < n; p++) {
      const r = Math.floor(p / spec.cols);
      const c = p % spec.cols;
      for (let k = 0; k < spec.samples; k++) {
        let v = Math.floor(((r + c * (k + 1) + f * 7) / (spec.rows + spec.cols * 3)) * max) + (rand() & 3);
        if (c > spec.cols / 2 && r > spec.rows / 3) v = Math.floor(max / 3) + (rand() & 1);
        v = Math.min(max, v);
        if (spec.signed) v -= Math.floor(max / 2);
        const idx = spec.planar === 1 ? f * n * spec.samples + k * n + p : (f * n + p) * spec.samples + k;
        if (bps === 2) out.writeInt16LE(spec.signed ? v : v > 32767 ? v - 65536 : v, idx * 2);
        else out[idx] = v & 0xff;
      }
    }
  }
  return out;
}

export function imageElements(spec: ImageSpec, sopInstanceUid: string): El[] {
  const frames = spec.frames ?? 1;
  const photometric = spec.photometric ?? (spec.samples === 3 ? 'RGB' : 'MONOCHROME2');
  const stored = spec.bitsStored ?? (spec.bits === 16 ? 12 : 8);
  return [
    { tag: 0x00080016, vr: 'UI', value: pad(SECONDARY_CAPTURE, '\0') },
    { tag: 0x00080018, vr: 'UI', value: pad(sopInstanceUid, '\0') },
    { tag: 0x00080060, vr: 'CS', value: 'OT' },
    { tag: 0x00100010, vr: 'PN', value: pad('Canary^Codec') },
    { tag: 0x0020000d, vr: 'UI', value: pad('1.2.826.0.1.3680043.2.1125.11', '\0') },
    { tag: 0x0020000e, vr: 'UI', value: pad('1.2.826.0.1.3680043.2.1125.12', '\0') },
    { tag: 0x00280002, vr: 'US', value: us(spec.samples) },
    { tag: 0x00280004, vr: 'CS', value: pad(photometric) },
    ...(spec.samples === 3 ? [{ tag: 0x00280006, vr: 'US', value: us(spec.planar ?? 0) } as El] : []),
    ...(frames > 1 ? [{ tag: 0x00280008, vr: 'IS', value: pad(String(frames)) } as El] : []),
    { tag: 0x00280010, vr: 'US', value: us(spec.rows) },
    { tag: 0x00280011, vr: 'US', value: us(spec.cols) },
    { tag: 0x00280100, vr: 'US', value: us(spec.bits) },
    { tag: 0x00280101, vr: 'US', value: us(stored) },
    { tag: 0x00280102, vr: 'US', value: us(stored - 1) },
    { tag: 0x00280103, vr: 'US', value: us(spec.signed ? 1 : 0) },
    { tag: 0x00290010, vr: 'LO', value: pad('PACS_EDGE TEST') },
    { tag: 0x00291010, vr: 'OB', value: Buffer.from([1, 2, 3, 4, 5, 6]) },
    { tag: 0x7fe00010, vr: spec.bits === 16 ? 'OW' : 'OB', value: padEvenBuf(pixels(spec)) },
  ];
}

function padEvenBuf(b: Buffer): Buffer {
  return b.length % 2 ? Buffer.concat([b, Buffer.alloc(1)]) : b;
}

/** The Explicit VR LE data set of an image fixture. */
export function imageDataset(spec: ImageSpec, sopInstanceUid = testUid('img')): Buffer {
  return encodeDataset(imageElements(spec, sopInstanceUid), ExplicitLE);
}

/** A Part 10 Secondary Capture file of an image fixture. */
export function imageFile(spec: ImageSpec): { bytes: Buffer; sopInstanceUid: string } {
  const sopInstanceUid = testUid('img');
  return { bytes: part10({ sopClassUid: SECONDARY_CAPTURE, sopInstanceUid, ts: '1.2.840.10008.1.2.1', dataset: imageDataset(spec, sopInstanceUid) }), sopInstanceUid };
}

/** A named set covering what the codecs must handle. */
export const IMAGE_MATRIX: { name: string; spec: ImageSpec }[] = [
  { name: 'mono 16-bit unsigned 12 stored', spec: { rows: 64, cols: 64, samples: 1, bits: 16 } },
  { name: 'mono 16-bit signed', spec: { rows: 48, cols: 40, samples: 1, bits: 16, signed: true } },
  { name: 'mono 16-bit full range', spec: { rows: 32, cols: 32, samples: 1, bits: 16, bitsStored: 16 } },
  { name: 'mono 8-bit odd size', spec: { rows: 17, cols: 33, samples: 1, bits: 8 } },
  { name: 'mono 8-bit signed', spec: { rows: 20, cols: 20, samples: 1, bits: 8, signed: true } },
  { name: 'RGB interleaved', spec: { rows: 31, cols: 45, samples: 3, bits: 8, planar: 0 } },
  { name: 'RGB planar', spec: { rows: 30, cols: 40, samples: 3, bits: 8, planar: 1 } },
  { name: 'multi-frame 16-bit', spec: { rows: 32, cols: 24, samples: 1, bits: 16, frames: 5 } },
  { name: 'single pixel', spec: { rows: 1, cols: 1, samples: 1, bits: 16 } },
];
