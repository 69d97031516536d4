import type { GatewayConfig } from '../config/types.js';
import { Status } from '../dicom/status.js';
import type { CommitmentRegistry } from '../forward/commitment.js';
import type { Logger } from '../log.js';
import type { CommitmentScp } from '../receive/commitment-scp.js';
import type { CommitmentServices } from '../receive/dimse-service.js';

/**
 * Storage Commitment as the DICOM listener offers it: a modality's N-ACTION goes to our SCP (or
 * is refused when it is disabled), and a destination's N-EVENT-REPORT arriving on a new
 * association settles our own request to it. Wired here because the two halves live in
 * receive/ and forward/, which do not import each other.
 * @see PS3.4 Annex J
 */
export function commitmentServices(o: { config: GatewayConfig; scp: CommitmentScp | undefined; registry: CommitmentRegistry; log: Logger }): CommitmentServices {
  return {
    peers: o.config.forward.filter((d) => d.commit).map((d) => ({ aeTitle: d.aeTitle, host: d.host })),
    onAction: (req) => (o.scp ? o.scp.onAction(req) : Promise.resolve({ status: Status.SopClassNotSupported.code, comment: 'storage commitment is disabled' })),
    onEventReport: async (req) =>
      (await o.registry.receive(req.dataset, req.explicitVr, o.log.child({ callingAe: req.callingAeTitle }))) === 'settled'
        ? { status: Status.Success.code }
        : { status: Status.InvalidArgumentValue.code, comment: 'unreadable storage commitment report' },
  };
}
