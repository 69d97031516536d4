import dcmjs from 'dcmjs';
import type { VrOf } from './vr-convert.js';

/**
 * The VR of a standard data element, from dcmjs's copy of the PS3.6 data dictionary, for
 * reading Implicit VR data. Rules on top of the dictionary:
 * - group lengths (gggg,0000) are UL; private creators (odd group, 0010-00FF) are LO;
 * - other private elements and unknown tags: undefined (the caller writes UN);
 * - ambiguous entries: "OB or OW" is OW (Implicit VR pixel and overlay data are OW, PS3.5 §A.1),
 *   "US or SS" is US, "US or OW" is US.
 *
 * @see PS3.6 Table 6-1, PS3.5 §6.2.2 and §7.8 (private elements)
 */
const dictionary = (dcmjs as unknown as { data: { DicomMetaDictionary: { dictionary: Record<string, { vr: string } | undefined> } } }).data.DicomMetaDictionary.dictionary;
const cache = new Map<number, string | undefined>();

const hex4 = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');

export const dictionaryVr: VrOf = (tag) => {
  if (cache.has(tag)) return cache.get(tag);
  const group = tag >>> 16;
  const element = tag & 0xffff;
  let vr: string | undefined;
  if (element === 0x0000) vr = 'UL';
  else if (group % 2 === 1) vr = element >= 0x0010 && element <= 0x00ff ? 'LO' : undefined;
  else {
    const raw = dictionary[`(${hex4(group)},${hex4(element)})`]?.vr;
    vr = raw === 'ox' ? 'OW' : raw === 'xs' ? 'US' : raw === 'px' ? 'OW' : raw && /^[A-Z]{2}$/.test(raw) && raw !== 'NA' ? raw : undefined;
  }
  cache.set(tag, vr);
  return vr;
};
