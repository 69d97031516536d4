import { readFileSync } from 'node:fs';
import type { ConnectionOptions, TlsOptions } from 'node:tls';

/**
 * TLS for DICOM (and the other links), per the BCP 195 profiles of PS3.15 Annex B.9–B.11:
 * TLS 1.2 or 1.3 only; in TLS 1.2 only ECDHE key exchange with AEAD ciphers (forward secrecy,
 * no CBC, no RSA key transport, no SHA-1 MACs); TLS 1.3 suites as OpenSSL offers them (all AEAD).
 * Certificates are PEM files named in the configuration.
 *
 * @see PS3.15 Annex B.9 (BCP 195 TLS Secure Transport Connection Profile), RFC 9325 (BCP 195)
 * @see GB/T 22239-2019 §8.1.2.2 (通信传输: 保密性与完整性)
 */
export const TLS_MIN_VERSION = 'TLSv1.2' as const;

/** TLS 1.2 suites allowed (OpenSSL names), strongest first; TLS 1.3 suites are separate in OpenSSL. */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
].join(':');

export interface TlsFiles {
  cert?: string | undefined;
  key?: string | undefined;
  ca?: string | undefined;
}

const read = (f: string | undefined): Buffer | undefined => (f ? readFileSync(f) : undefined);

/** What both ends share: the certificate files and the BCP 195 profile. */
function profile(files: TlsFiles): { cert?: Buffer | undefined; key?: Buffer | undefined; ca?: Buffer; minVersion: typeof TLS_MIN_VERSION; ciphers: string } {
  const ca = read(files.ca);
  return { cert: read(files.cert), key: read(files.key), ...(ca ? { ca } : {}), minVersion: TLS_MIN_VERSION, ciphers: TLS12_CIPHERS };
}

/** Options of a TLS listener (the DICOM TLS SCP). */
export function tlsServerOptions(files: TlsFiles & { requireClientCert: boolean }): TlsOptions {
  const p = profile(files);
  return {
    ...p,
    honorCipherOrder: true,
    // Ask for a certificate whenever there is a CA to check it against; refuse the
    // handshake without a valid one only when required.
    requestCert: files.requireClientCert || p.ca !== undefined,
    rejectUnauthorized: files.requireClientCert,
  };
}

/** Options of a TLS client (FORWARD-SCU, syslog). The server certificate is always verified. */
export function tlsClientOptions(files: TlsFiles & { host: string }): ConnectionOptions {
  return {
    ...profile(files),
    rejectUnauthorized: true,
    // SNI only for names (RFC 6066 forbids IP literals there).
    ...(/^[\d.]+$|:/.test(files.host) ? {} : { servername: files.host }),
  };
}
