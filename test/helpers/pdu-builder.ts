/**
 * Hand-built Upper Layer PDUs for unit tests, written from the PS3.8 §9.3 layouts (not from
 * src/receive/pdu.ts) so that the decoder is checked against an independent encoder.
 * Every part can be overridden or left out to build malformed or unusual requests.
 *
 * @see PS3.8 §9.3.2 (A-ASSOCIATE-RQ), §9.3.5 (P-DATA-TF), Annex D (user information items)
 */

export const APP_CONTEXT = '1.2.840.10008.3.1.1.1';

/** An item: type (1), reserved (1), length (2, big endian), value. */
export function pduItem(type: number, value: Buffer | string): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  const h = Buffer.alloc(4);
  h[0] = type;
  h.writeUInt16BE(v.length, 2);
  return Buffer.concat([h, v]);
}

/** A PDU: type (1), reserved (1), length (4, big endian), body. */
export function pdu(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h[0] = type;
  h.writeUInt32BE(body.length, 2);
  return Buffer.concat([h, body]);
}

/** A 16-byte AE title field, space padded (a Buffer is used as is). */
export function aeField(ae: string | Buffer): Buffer {
  if (Buffer.isBuffer(ae)) return ae;
  return Buffer.from(ae.padEnd(16, ' ').slice(0, 16), 'latin1');
}

export interface ProposedContextSpec {
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

export interface AssociateRqSpec {
  protocolVersion?: number;
  calledAe?: string | Buffer;
  callingAe?: string | Buffer;
  /** null leaves the application context item out. */
  applicationContext?: string | null;
  contexts?: ProposedContextSpec[];
  /** null leaves the 0x51 sub-item out; undefined gives 16384. */
  maxPduLength?: number | null;
  implementationClassUid?: string | null;
  implementationVersionName?: string | null;
  /** Extra sub-items appended to the user information item (e.g. 0x53, 0x54). */
  extraUserItems?: Buffer[];
  /** Extra top-level items appended after the user information item. */
  extraItems?: Buffer[];
  /** Leave the user information item out altogether. */
  noUserInformation?: boolean;
}

/** A presentation context item (0x20) with its abstract (0x30) and transfer syntax (0x40) sub-items. */
export function presentationContextItem(c: ProposedContextSpec): Buffer {
  return pduItem(
    0x20,
    Buffer.concat([Buffer.from([c.id, 0, 0, 0]), pduItem(0x30, c.abstractSyntax), ...c.transferSyntaxes.map((t) => pduItem(0x40, t))]),
  );
}

/** The body of an A-ASSOCIATE-RQ (everything after the 6-byte PDU header). */
export function associateRqBody(spec: AssociateRqSpec = {}): Buffer {
  const fixed = Buffer.alloc(68); // version(2) reserved(2) called(16) calling(16) reserved(32)
  fixed.writeUInt16BE(spec.protocolVersion ?? 0x0001, 0);
  aeField(spec.calledAe ?? 'PACS_EDGE').copy(fixed, 4);
  aeField(spec.callingAe ?? 'MODALITY').copy(fixed, 20);
  const items: Buffer[] = [];
  if (spec.applicationContext !== null) items.push(pduItem(0x10, spec.applicationContext ?? APP_CONTEXT));
  for (const c of spec.contexts ?? []) items.push(presentationContextItem(c));
  if (!spec.noUserInformation) {
    const user: Buffer[] = [];
    if (spec.maxPduLength !== null) {
      const max = Buffer.alloc(4);
      max.writeUInt32BE(spec.maxPduLength ?? 16384, 0);
      user.push(pduItem(0x51, max));
    }
    if (spec.implementationClassUid !== null) user.push(pduItem(0x52, spec.implementationClassUid ?? '1.2.276.0.7230010.3.0.3.6.7'));
    if (spec.implementationVersionName !== null) user.push(pduItem(0x55, spec.implementationVersionName ?? 'OFFIS_DCMTK_367'));
    user.push(...(spec.extraUserItems ?? []));
    items.push(pduItem(0x50, Buffer.concat(user)));
  }
  items.push(...(spec.extraItems ?? []));
  return Buffer.concat([fixed, ...items]);
}

/** A whole A-ASSOCIATE-RQ PDU (type 0x01). */
export function associateRqPdu(spec: AssociateRqSpec = {}): Buffer {
  return pdu(0x01, associateRqBody(spec));
}

/** A PDV item: length (4, BE, = data + 2), presentation context id, message control header, data. */
export function pdv(contextId: number, control: number, data: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h.writeUInt32BE(data.length + 2, 0);
  h[4] = contextId;
  h[5] = control;
  return Buffer.concat([h, data]);
}

/** A P-DATA-TF PDU (type 0x04) holding the given PDV items. */
export function pDataPdu(...pdvs: Buffer[]): Buffer {
  return pdu(0x04, Buffer.concat(pdvs));
}

/** Walk `type reserved length(2 BE) value` items of a buffer into a list. */
export function parseItems(buf: Buffer): { type: number; value: Buffer }[] {
  const out: { type: number; value: Buffer }[] = [];
  let off = 0;
  while (off < buf.length) {
    if (off + 4 > buf.length) throw new Error(`item header truncated at ${off}`);
    const type = buf[off]!;
    if (buf[off + 1] !== 0) throw new Error(`reserved byte of item 0x${type.toString(16)} is not zero`);
    const len = buf.readUInt16BE(off + 2);
    if (off + 4 + len > buf.length) throw new Error(`item 0x${type.toString(16)} runs past its parent`);
    out.push({ type, value: buf.subarray(off + 4, off + 4 + len) });
    off += 4 + len;
  }
  return out;
}
