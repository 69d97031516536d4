import { buildPart10Header } from '../dicom/file-meta.js';
import type { ObjectReader } from '../spool/spool.js';

/**
 * A converted object, held in memory, read like a spooled file: a Part 10 header for the new
 * transfer syntax, then the data set the codec worker produced (and verified).
 */
export function memoryReader(meta: { sopClassUid: string; sopInstanceUid: string; transferSyntaxUid: string }, dataset: Buffer): ObjectReader {
  const header = buildPart10Header(meta);
  const size = header.length + dataset.length;
  return {
    size,
    sha256: '',
    verified: true,
    read: async (buf, position) => {
      let n = 0;
      if (position < header.length) n += header.copy(buf, 0, position);
      const from = Math.max(0, position - header.length);
      if (n < buf.length && from < dataset.length) n += dataset.copy(buf, n, from);
      return n;
    },
    close: async () => undefined,
  };
}
