import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import charlsFactory from '@cornerstonejs/codec-charls/wasmjs';
import libjpegFactory from '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs';
import openjpegFactory from '@cornerstonejs/codec-openjpeg/decodewasmjs';
import openjphFactory from '@cornerstonejs/codec-openjph';
import type { Codecs } from '../../src/compress/transcode.js';
import { findElement, readText, topLevelElements } from '../../src/dicom/elements.js';
import { framesOf, readFragments } from '../../src/dicom/encapsulation.js';
import { imagePixel, isNotCompressible } from '../../src/dicom/image-pixel.js';
import { readPart10Header } from '../../src/dicom/file-meta.js';
import { TS } from '../../src/dicom/transfer-syntaxes.js';
import { datasetBytes } from './dcmtk.js';
import { canonicalSamples } from './pixel-compare.js';
import { run } from './processes.js';

/**
 * Independent decoders the gateway's decoding is judged by: DCMTK (dcmdjpeg, dcmdjpls, dcmdrle)
 * for JPEG, JPEG-LS and RLE, OpenJPEG's opj_decompress (one frame at a time) for JPEG 2000 and
 * HTJ2K. Samples are compared in one canonical order (pixel, then sample), whatever the layout.
 */
export async function allDecoders(): Promise<Codecs> {
  const quiet = { print: () => undefined, printErr: () => undefined };
  const [charls, openjph, libjpeg, openjpeg] = await Promise.all([charlsFactory(), openjphFactory(quiet), libjpegFactory(quiet), openjpegFactory(quiet)]);
  return { charls: () => charls, openjph: () => openjph, libjpeg: () => libjpeg, openjpeg: () => openjpeg };
}

export const REFERENCE_TOOLS = { dcmdjpeg: 'apt-get install dcmtk', dcmdjpls: 'apt-get install dcmtk', dcmdrle: 'apt-get install dcmtk', dcmcjpeg: 'apt-get install dcmtk', dcmcjpls: 'apt-get install dcmtk', dcmodify: 'apt-get install dcmtk', opj_decompress: 'apt-get install libopenjp2-tools', opj_compress: 'apt-get install libopenjp2-tools', gdcmconv: 'apt-get install libgdcm-tools' };

/** What an independent decoder made of a file: samples in canonical order, and its Photometric Interpretation when it wrote a data set. */
export interface Reference {
  tool: string;
  samples: number[];
  photometric?: string | undefined;
}

const DCMTK_TOOL: Record<string, string> = {
  [TS.JPEGBaseline8Bit]: 'dcmdjpeg',
  [TS.JPEGExtended12Bit]: 'dcmdjpeg',
  [TS.JPEGLosslessProcess14]: 'dcmdjpeg',
  [TS.JPEGLossless]: 'dcmdjpeg',
  [TS.JPEGLSLossless]: 'dcmdjpls',
  [TS.JPEGLSNearLossless]: 'dcmdjpls',
  [TS.RLELossless]: 'dcmdrle',
};

/** The reference decoding of a Part 10 file in a compressed syntax. */
export async function referenceDecoding(file: string, workDir: string): Promise<Reference> {
  const bytes = readFileSync(file);
  const h = { ...part10Dataset(bytes), transferSyntaxUid: part10Dataset(bytes).ts };
  const tool = DCMTK_TOOL[h.transferSyntaxUid];
  if (tool) {
    const out = path.join(workDir, `${path.basename(file)}.${tool}.dcm`);
    let r = await run(tool, [file, out]);
    let used = tool;
    if (r.code !== 0) {
      // DCMTK refuses a few valid streams (JLSL_08_07_0_1F.dcm: 7-bit JPEG-LS); GDCM is the second opinion.
      used = 'gdcmconv --raw';
      r = await run('gdcmconv', ['--raw', file, out]);
      if (r.code !== 0) throw new Error(`${tool} and gdcmconv failed on ${file}: ${r.stderr}`);
    }
    const ds = datasetBytes(readFileSync(out));
    return { tool: used, samples: canonicalSamples(ds), photometric: readText(ds, findElement(topLevelElements(ds), 0x00280004))?.trim() };
  }
  // JPEG 2000 / HTJ2K: each frame's codestream through opj_decompress, raw little endian, planes one after another.
  const ds = h.dataset;
  const img = imagePixel(ds, topLevelElements(ds));
  if (isNotCompressible(img)) throw new Error(`${file}: ${img.reason}`);
  const streams = framesOf(readFragments(ds, img.pixelData.valueOffset, img.pixelData.end), img.frames);
  const samples: number[] = [];
  const n = img.rows * img.columns;
  const spp = img.samplesPerPixel;
  for (const [i, s] of streams.entries()) {
    const j2c = path.join(workDir, `${path.basename(file)}-${i}.j2c`);
    writeFileSync(j2c, s);
    const r = await run('opj_decompress', ['-quiet', '-i', j2c, '-o', `${j2c}.rawl`]);
    if (r.code !== 0) throw new Error(`opj_decompress failed on ${file} frame ${i + 1}: ${r.stderr}`);
    const raw = readFileSync(`${j2c}.rawl`);
    const bps = raw.length / (n * spp);
    // opj_decompress writes signed samples of fewer than 16 bits without extending their sign
    // (693_J2KR.dcm: 14-bit signed); DICOM's native form has it extended (as 693_UNCR.dcm shows).
    const ssiz = s[42]!;
    const extend = bps === 2 && ssiz & 0x80 && (ssiz & 0x7f) + 1 < 16 ? 32 - ((ssiz & 0x7f) + 1) : 0;
    const sample = (i: number) => (extend ? ((raw.readUInt16LE(i * 2) << extend) >> extend) & 0xffff : raw.readUInt16LE(i * 2));
    for (let p = 0; p < n; p++) for (let c = 0; c < spp; c++) samples.push(bps === 2 ? sample(c * n + p) : raw[c * n + p]!);
  }
  return { tool: 'opj_decompress', samples };
}

/** The largest absolute difference between two sample lists of one length (Infinity when the lengths differ). */
export function maxAbsDiff(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) return Infinity;
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** The data set of a Part 10 file and its transfer syntax. */
export function part10Dataset(bytes: Buffer): { dataset: Buffer; ts: string; sopInstanceUid: string } {
  const h = readPart10Header(bytes);
  if (h) return { dataset: bytes.subarray(h.datasetOffset), ts: h.transferSyntaxUid, sopInstanceUid: h.sopInstanceUid };
  // Some corpus files (JLSL_RGB_ILV0.dcm …) have no preamble and a File Meta without the SOP UIDs the gateway's
  // reader requires: walk the group 0002 elements (Explicit VR LE) for the transfer syntax alone.
  let pos = bytes.toString('latin1', 128, 132) === 'DICM' ? 132 : 0; // one of them has no preamble
  let ts = '';
  while (pos + 8 <= bytes.length && bytes.readUInt16LE(pos) === 0x0002) {
    const el = bytes.readUInt16LE(pos + 2);
    const vr = bytes.toString('latin1', pos + 4, pos + 6);
    const long = ['OB', 'OW', 'UN', 'SQ', 'UT', 'UC', 'UR', 'OD', 'OF', 'OL', 'OV'].includes(vr);
    const len = long ? bytes.readUInt32LE(pos + 8) : bytes.readUInt16LE(pos + 6);
    const value = pos + (long ? 12 : 8);
    if (el === 0x0010) ts = bytes.toString('latin1', value, value + len).replace(/[\0 ]+$/, '');
    pos = value + len;
  }
  return { dataset: bytes.subarray(pos), ts, sopInstanceUid: '' };
}

/** A top-level text attribute, trimmed. */
export function textOf(ds: Buffer, tag: number): string | undefined {
  return readText(ds, findElement(topLevelElements(ds), tag))?.trim();
}

export { datasetBytes };
