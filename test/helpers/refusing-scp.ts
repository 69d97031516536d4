import { createServer, type Server, type Socket } from 'node:net';
import { CommandField, decodeCommand, encodeResponse } from '../../src/dicom/command.js';
import { Tag } from '../../src/dicom/tags.js';
import { APP_CONTEXT, parseItems, pdu, pduItem, pdv } from './pdu-builder.js';

/**
 * A scripted Storage SCP on loopback that refuses every C-STORE with one status and an Error
 * Comment (0000,0902) of the test's choosing: DCMTK's storescp cannot answer with a failure
 * status. Accepts every proposed context with its first transfer syntax, answers A-RELEASE.
 *
 * @see PS3.8 §9.3 (PDUs), PS3.7 §9.3.1.2 (C-STORE-RSP)
 */
export async function startRefusingScp(opts: { status: number; errorComment: string }): Promise<{ port: number; refused: () => number; stop: () => Promise<void> }> {
  let refused = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let command = Buffer.alloc(0);
    let pending: { contextId: number; messageId: number; sopClassUid?: string; sopInstanceUid?: string } | undefined;
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 6 && buf.length >= 6 + buf.readUInt32BE(2)) {
        const type = buf[0]!;
        const body = buf.subarray(6, 6 + buf.readUInt32BE(2));
        buf = buf.subarray(6 + body.length);
        if (type === 0x01) socket.write(associateAc(body));
        else if (type === 0x04) {
          for (let off = 0; off < body.length; ) {
            const len = body.readUInt32BE(off);
            const contextId = body[off + 4]!;
            const control = body[off + 5]!;
            const data = body.subarray(off + 6, off + 4 + len);
            off += 4 + len;
            if (control & 1) {
              command = Buffer.concat([command, data]);
              if (control & 2) {
                const c = decodeCommand(command);
                command = Buffer.alloc(0);
                pending = { contextId, messageId: c.us(Tag.MessageId)!, sopClassUid: c.str(Tag.AffectedSopClassUid), sopInstanceUid: c.str(Tag.AffectedSopInstanceUid) };
              }
            } else if (control & 2 && pending) {
              const rsp = encodeResponse({ commandField: CommandField.CStoreRsp, messageIdBeingRespondedTo: pending.messageId, status: opts.status, affectedSopClassUid: pending.sopClassUid, affectedSopInstanceUid: pending.sopInstanceUid, errorComment: opts.errorComment });
              socket.write(pdu(0x04, pdv(pending.contextId, 0x03, rsp)));
              refused++;
              pending = undefined;
            }
          }
        } else if (type === 0x05) socket.end(pdu(0x06, Buffer.alloc(4)));
        else socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    refused: () => refused,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A-ASSOCIATE-AC for an A-ASSOCIATE-RQ body: every context accepted with its first transfer syntax. */
function associateAc(rq: Buffer): Buffer {
  const fixed = Buffer.from(rq.subarray(0, 68));
  const items: Buffer[] = [pduItem(0x10, APP_CONTEXT)];
  for (const item of parseItems(rq.subarray(68))) {
    if (item.type !== 0x20) continue;
    const ts = parseItems(item.value.subarray(4)).find((s) => s.type === 0x40)!;
    items.push(pduItem(0x21, Buffer.concat([Buffer.from([item.value[0]!, 0, 0, 0]), pduItem(0x40, ts.value)])));
  }
  const max = Buffer.alloc(4);
  max.writeUInt32BE(65536, 0);
  items.push(pduItem(0x50, Buffer.concat([pduItem(0x51, max), pduItem(0x52, '1.2.826.0.1.3680043.10.1') ])));
  return pdu(0x02, Buffer.concat([fixed, ...items]));
}
