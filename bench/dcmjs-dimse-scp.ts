/**
 * The "library as-is" baseline: a dcmjs-dimse Storage SCP written the way its README shows,
 * using the library's default C-STORE path (the whole data set accumulated in memory, parsed
 * into a dcmjs Dataset, handed to cStoreRequest) and saving each object with Dataset.toFile
 * (fs.writeFile: no fsync) before answering Success.
 *
 * usage: node dist/bench/dcmjs-dimse-scp.js --port N --out DIR
 * Prints "listening <port>" on stdout when ready. Bound to 127.0.0.1 only (dcmjs-dimse's
 * Server.listen binds every interface, so the sockets are handed to the Scp class here the
 * same way Server does).
 */
import net from 'node:net';
import path from 'node:path';
import dimse from 'dcmjs-dimse';

const { Scp, log } = dimse;
const { CEchoResponse, CStoreResponse } = dimse.responses;
const { Status, PresentationContextResult, TransferSyntax, SopClass, StorageClass } = dimse.constants;

function arg(name: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (!v) {
    console.error(`usage: dcmjs-dimse-scp --port N --out DIR (missing ${name})`);
    process.exit(2);
  }
  return v;
}

const port = Number(arg('--port'));
const outDir = arg('--out');
log.setLevel('warn');

const storage = new Set<string>(Object.values(StorageClass as Record<string, string>));
const syntaxes = new Set<string>([TransferSyntax.ImplicitVRLittleEndian, TransferSyntax.ExplicitVRLittleEndian]);
let stored = 0;
let failed = 0;

class BenchScp extends Scp {
  override associationRequested(association: dimse.association.Association): void {
    for (const c of association.getPresentationContexts()) {
      const context = association.getPresentationContext(c.id);
      const abstract = context.getAbstractSyntaxUid();
      if (abstract !== SopClass.Verification && !storage.has(abstract)) {
        context.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
        continue;
      }
      const ts = context.getTransferSyntaxUids().find((t) => syntaxes.has(t));
      if (ts) context.setResult(PresentationContextResult.Accept, ts);
      else context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
    }
    this.sendAssociationAccept();
  }

  override cEchoRequest(request: dimse.requests.CEchoRequest, callback: (response: dimse.responses.CEchoResponse) => void): void {
    const response = CEchoResponse.fromRequest(request);
    response.setStatus(Status.Success);
    callback(response);
  }

  override cStoreRequest(request: dimse.requests.CStoreRequest, callback: (response: dimse.responses.CStoreResponse) => void): void {
    const response = CStoreResponse.fromRequest(request);
    const dataset = request.getDataset();
    const uid = dataset?.getElement('SOPInstanceUID');
    if (!dataset || !uid) {
      failed++;
      response.setStatus(Status.ProcessingFailure);
      callback(response);
      return;
    }
    dataset.toFile(path.join(outDir, `${uid}.dcm`), (err) => {
      if (err) failed++;
      else stored++;
      response.setStatus(err ? Status.ProcessingFailure : Status.Success);
      callback(response);
    });
  }

  override associationReleaseRequested(): void {
    this.sendAssociationReleaseResponse();
  }
}

const server = net.createServer((socket) => {
  const scp = new BenchScp(socket, {});
  (scp as unknown as { connected: boolean }).connected = true;
  scp.on('networkError', () => socket.end());
});
server.listen({ host: '127.0.0.1', port }, () => {
  process.stdout.write(`listening ${port}\n`);
});
process.on('SIGTERM', () => {
  process.stdout.write(`stored ${stored} failed ${failed}\n`);
  server.close();
  process.exit(0);
});
