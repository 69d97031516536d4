import { mkdir } from 'node:fs/promises';
import { AUDIT_FORMAT, auditFormatOf } from '../audit/chain.js';
import type { GatewayConfig } from '../config/types.js';
import { Code, PacsEdgeError } from '../errors.js';
import { controlAnswers } from '../health/control-server.js';
import { checkDeviceKeyFits } from '../spool/key-check.js';
import type { DeviceKey } from '../security/device-key.js';
import { deviceKeyFor } from '../security/spool-key.js';
import { checkSpoolFormat } from '../spool/open.js';
import { VERSION } from '../version.js';

/**
 * What must hold before the gateway opens anything: no other gateway runs with this
 * configuration, the device key exists (made at the very first start only) and fits the data
 * here, and neither the spool nor the audit trail was written by a newer release. Each refusal
 * says what to do, and nothing has been changed when it comes.
 *
 * @returns the device key, which roots the audit chain and the spool's encryption
 */
export async function preflight(config: GatewayConfig): Promise<DeviceKey> {
  await mkdir(config.spool.dir, { recursive: true, mode: 0o750 });
  // A gateway already answering on this control socket owns the spool and the trail: say so at once.
  if (await controlAnswers(config.control.socket)) {
    throw new PacsEdgeError(Code.GATEWAY_RUNNING, `a gateway is already running with this configuration (it answers on ${config.control.socket})`);
  }
  // Made at the first start only, never over data sealed or chained with another (src/security/spool-key.ts)…
  const deviceKey = deviceKeyFor(config, { create: true });
  // …and a key that does not fit the data here stops the start before anything is opened with it.
  await checkDeviceKeyFits(config, deviceKey);
  // A spool or an audit trail written by a newer release (a downgrade too far): exit 7, nothing changed.
  await checkSpoolFormat(config);
  const auditFormat = await auditFormatOf(config.audit.dir);
  if (auditFormat !== undefined && auditFormat > AUDIT_FORMAT) {
    throw new PacsEdgeError(
      Code.AUDIT_FORMAT_NEWER,
      `the audit trail in ${config.audit.dir} is in format ${auditFormat}; pacs-edge ${VERSION} writes format ${AUDIT_FORMAT}: install the release that wrote it, or a newer one. Nothing was changed.`,
    );
  }
  return deviceKey;
}
