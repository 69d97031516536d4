import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { resolveSopClass } from '../../src/dicom/sop-classes.js';
import { matches, routeOf } from '../../src/spool/route.js';
import { tempDir } from '../helpers/processes.js';

const CT = '1.2.840.10008.5.1.4.1.1.2';
const MR = '1.2.840.10008.5.1.4.1.1.4';
const DOSE = '1.2.840.10008.5.1.4.1.1.88.67';

describe('routing: forward[].match', () => {
  it('every condition given must hold; a list holds when any entry does; no match takes everything', () => {
    const ct = { callingAeTitle: 'CT1', modality: 'CT', sopClassUid: CT };
    expect(matches(undefined, ct)).toBe(true);
    expect(matches({ modality: ['CT', 'MR'] }, ct)).toBe(true);
    expect(matches({ modality: ['ct'].map((m) => m.toUpperCase()) }, { ...ct, modality: 'ct' })).toBe(true);
    expect(matches({ modality: ['MR'] }, ct)).toBe(false);
    expect(matches({ modality: ['CT'], callingAeTitle: ['CT2'] }, ct)).toBe(false);
    expect(matches({ sopClass: [CT] }, ct)).toBe(true);
    expect(matches({ notSopClass: [CT] }, ct)).toBe(false);
    expect(matches({ modality: ['CT'] }, { ...ct, modality: undefined })).toBe(false);
    const route = routeOf([
      { name: 'pacs' } as never,
      { name: 'ai', match: { modality: ['CT'] } } as never,
      { name: 'dose', match: { sopClass: [DOSE] } } as never,
    ]);
    expect(route({ ...ct })).toEqual(['pacs', 'ai']);
    expect(route({ callingAeTitle: 'MR1', modality: 'MR', sopClassUid: MR })).toEqual(['pacs']);
    expect(route({ callingAeTitle: 'CT1', modality: 'SR', sopClassUid: DOSE })).toEqual(['pacs', 'dose']);
  });

  it('SOP Classes by PS3.6 keyword are resolved by the configuration; an unknown one is refused by name', () => {
    expect(resolveSopClass('CTImageStorage')).toBe(CT);
    expect(resolveSopClass('XRayRadiationDoseSRStorage')).toBe(DOSE);
    expect(resolveSopClass('EnhancedCTImageStorage')).toBe('1.2.840.10008.5.1.4.1.1.2.1');
    expect(resolveSopClass('1.2.3.4')).toBe('1.2.3.4');
    expect(resolveSopClass('NoSuchStorage')).toBeUndefined();
    const t = tempDir();
    try {
      const file = path.join(t.dir, 'g.yaml');
      const base = `device: { id: e }\nreceive: { aeTitle: A, callers: [{ aeTitle: B }] }\nspool: { dir: ${t.dir}/spool }\n`;
      writeFileSync(file, `${base}forward: [{ name: ai, aeTitle: AI, host: h, port: 104, match: { modality: [ct], sopClass: [CTImageStorage], notSopClass: ['${MR}'] } }]\n`);
      expect(loadConfig(file).forward[0]!.match).toEqual({ modality: ['CT'], sopClass: [CT], notSopClass: [MR] });
      writeFileSync(file, `${base}forward: [{ name: ai, aeTitle: AI, host: h, port: 104, match: { sopClass: [CTImageStorag], colour: [red] } }]\n`);
      let err: unknown;
      try {
        loadConfig(file);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems.join('\n')).toMatch(/forward\[0\]\.match\.sopClass\[0\]: "CTImageStorag" is neither a SOP Class UID nor a PS3\.6 keyword/);
      expect((err as ConfigError).problems.join('\n')).toMatch(/forward\[0\]\.match.*colour/);
    } finally {
      t.cleanup();
    }
  });
});
