import { readFileSync } from 'node:fs';
import type { GatewayConfig } from '../config/types.js';

/**
 * Does this CPU have the instructions AES-GCM needs to be fast? AES-256-GCM is the default
 * sealing profile; without AES rounds and carry-less multiply in hardware OpenSSL falls back to
 * table code. Measured on the development machine with the instructions masked from OpenSSL
 * (`OPENSSL_ia32cap`, bench/seal-throughput.ts): AES-256-GCM drops about eightfold, while
 * ChaCha20-Poly1305 (plain arithmetic, no special instructions) stays where it was. Boards of the
 * Raspberry Pi 4 class (Cortex-A72 without the ARMv8 Cryptography Extension) are such CPUs: they
 * want `spool.encryption.profile: chacha20-poly1305` (docs/security.md).
 *
 * Read from /proc/cpuinfo, which the kernel fills from the CPU's own feature registers:
 * `Features` on arm and arm64 (`aes`, `pmull`; HWCAP_AES / HWCAP_PMULL), `flags` on x86 (`aes`,
 * `pclmulqdq`; CPUID.1:ECX bits 25 and 1).
 *
 * @see Arm Architecture Reference Manual for A-profile, FEAT_AES / FEAT_PMULL; Linux
 *   Documentation/arch/arm64/elf_hwcaps.rst
 */
export interface AesSupport {
  /** The instructions that are missing on at least one core ([] when all are there). */
  missing: string[];
}

/** The feature names that AES-GCM needs on each architecture (as /proc/cpuinfo spells them). */
const NEEDED: Record<string, { field: RegExp; names: string[] }> = {
  arm64: { field: /^Features\s*:(.*)$/gim, names: ['aes', 'pmull'] },
  arm: { field: /^Features\s*:(.*)$/gim, names: ['aes', 'pmull'] },
  x64: { field: /^flags\s*:(.*)$/gim, names: ['aes', 'pclmulqdq'] },
  ia32: { field: /^flags\s*:(.*)$/gim, names: ['aes', 'pclmulqdq'] },
};

/**
 * What `cpuinfo` (the text of /proc/cpuinfo) says about the AES-GCM instructions on `arch`
 * (`process.arch`). Undefined when it cannot tell: another architecture, or no feature line
 * (a container that hides /proc/cpuinfo) — the gateway then says nothing rather than guess.
 * Every core must have them: the sealing worker may run on any.
 */
export function aesSupport(cpuinfo: string, arch: string): AesSupport | undefined {
  const need = NEEDED[arch];
  if (!need) return undefined;
  const lines = [...cpuinfo.matchAll(need.field)].map((m) => new Set(m[1]!.trim().split(/\s+/)));
  if (lines.length === 0) return undefined;
  return { missing: need.names.filter((n) => lines.some((have) => !have.has(n))) };
}

/**
 * The warning for a configuration that seals with AES-256-GCM on a CPU without AES instructions;
 * undefined when there is nothing to say (another profile, the instructions are there, or the
 * CPU cannot be told).
 */
export function sealProfileWarning(profile: GatewayConfig['spool']['encryption']['profile'], cpuinfo: string, arch: string): string | undefined {
  if (profile !== 'aes-256-gcm') return undefined;
  const s = aesSupport(cpuinfo, arch);
  if (!s || s.missing.length === 0) return undefined;
  return (
    `spool.encryption.profile is aes-256-gcm, but this ${arch} CPU lacks the ${s.missing.join(' and ')} instruction(s) (/proc/cpuinfo): ` +
    'AES-GCM runs in software, several times slower than ChaCha20-Poly1305 and a bottleneck of receiving. ' +
    'Set spool.encryption.profile: chacha20-poly1305 (or extend a board profile such as profiles/arm64-4c-nocrypto.yaml); ' +
    'objects already sealed stay readable and are delivered (docs/security.md)'
  );
}

/** /proc/cpuinfo's text, or '' where there is none (not Linux, or hidden). */
export function readCpuinfo(file = '/proc/cpuinfo'): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** {@link sealProfileWarning} for this machine. */
export function sealProfileWarningHere(config: GatewayConfig, cpuinfo = readCpuinfo(), arch: string = process.arch): string | undefined {
  return sealProfileWarning(config.spool.encryption.profile, cpuinfo, arch);
}
