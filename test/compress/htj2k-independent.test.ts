import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import charlsFactory from '@cornerstonejs/codec-charls/wasmjs';
import openjphFactory from '@cornerstonejs/codec-openjph';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Codecs, encodeDataset } from '../../src/compress/transcode.js';
import { topLevelElements } from '../../src/dicom/elements.js';
import { readFragments } from '../../src/dicom/encapsulation.js';
import { Tag } from '../../src/dicom/tags.js';
import { type ImageSpec, imageDataset, pixels } from '../helpers/image-fixtures.js';
import { run, tempDir } from '../helpers/processes.js';

/**
 * HTJ2K checked by an independent decoder: OpenJPEG's opj_decompress (Debian libopenjp2-tools,
 * installed by `make test`) decodes the codestreams the gateway writes, and every sample must
 * equal the original. DCMTK 3.6.7 has no HTJ2K support, so it cannot be the judge here.
 */
const tmp = tempDir();
let codecs: Codecs;
beforeAll(async () => {
  const charls = await charlsFactory();
  const openjph = await openjphFactory({ print: () => undefined, printErr: () => undefined });
  codecs = { charls: () => charls, openjph: () => openjph };
});
afterAll(() => tmp.cleanup());

const CASES: { name: string; spec: ImageSpec }[] = [
  { name: '16-bit unsigned, 12 stored', spec: { rows: 64, cols: 48, samples: 1, bits: 16 } },
  { name: '16-bit signed', spec: { rows: 40, cols: 50, samples: 1, bits: 16, signed: true } },
  { name: '16-bit full range', spec: { rows: 33, cols: 17, samples: 1, bits: 16, bitsStored: 16 } },
  { name: '8-bit unsigned, odd size', spec: { rows: 31, cols: 29, samples: 1, bits: 8 } },
  { name: 'multi-frame', spec: { rows: 16, cols: 16, samples: 1, bits: 16, frames: 3 } },
];

describe('HTJ2K frames decode with OpenJPEG (opj_decompress) to the original samples', () => {
  for (const { name, spec } of CASES) {
    it(name, async () => {
      const enc = encodeDataset(imageDataset(spec), 'htj2k', codecs);
      expect(enc.kind).toBe('done');
      if (enc.kind !== 'done') return;
      const px = topLevelElements(enc.dataset).find((e) => e.tag === Tag.PixelData)!;
      const { fragments } = readFragments(enc.dataset, px.valueOffset, px.end);
      const original = pixels(spec);
      const frameBytes = spec.rows * spec.cols * (spec.bits / 8);
      for (const [i, frag] of fragments.entries()) {
        const j2c = path.join(tmp.dir, `${name.replace(/\W+/g, '_')}-${i}.j2c`);
        writeFileSync(j2c, frag);
        const out = `${j2c}.rawl`;
        const r = await run('opj_decompress', ['-quiet', '-i', j2c, '-o', out]);
        expect(r.code, r.stderr).toBe(0);
        const got = readFileSync(out);
        const want = original.subarray(i * frameBytes, (i + 1) * frameBytes);
        // OpenJPEG writes 8-bit samples as 1 byte and 16-bit ones as 2 (little endian for .rawl).
        expect(got.equals(want), `frame ${i + 1}`).toBe(true);
      }
    });
  }
});
