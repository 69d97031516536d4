import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { checkConfigCommand } from '../../src/cli/check-config.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { loadConfig } from '../../src/config/load.js';
import { aesSupport, readCpuinfo, sealProfileWarning } from '../../src/security/cpu-crypto.js';
import { ROOT, tempDir, writeGatewayConfig } from '../helpers/processes.js';

/**
 * Issue 17: a board without AES instructions gets a clear warning when it seals with
 * AES-256-GCM, and a board profile that picks chacha20-poly1305. The /proc/cpuinfo texts below
 * are as the kernels print them (serial numbers left out).
 */
const core = (n: number, features: string) => `processor\t: ${n}\nBogoMIPS\t: 108.00\nFeatures\t: ${features}\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU part\t: 0xd08\n\n`;
/** Raspberry Pi 4 (BCM2711, Cortex-A72 without the Cryptography Extension), 64-bit kernel. */
const PI4 = [0, 1, 2, 3].map((n) => core(n, 'fp asimd evtstrm crc32 cpuid')).join('') + 'Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n';
/** The same board under a 32-bit kernel (armv7l). */
const PI4_ARMV7 = [0, 1, 2, 3].map((n) => core(n, 'half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32')).join('');
/** Raspberry Pi 5 (Cortex-A76, with the Cryptography Extension). */
const PI5 = [0, 1, 2, 3].map((n) => core(n, 'fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp')).join('');
const x86 = (flags: string) => `processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: ${flags}\n\n`;
const X86_AES = x86('fpu vme de pse tsc msr pae mce cx8 sse sse2 ssse3 pclmulqdq sse4_1 sse4_2 aes avx avx2 sha_ni');
const X86_NO_AES = x86('fpu vme de pse tsc msr pae mce cx8 sse sse2 ssse3 sse4_1 sse4_2');

describe('aesSupport: /proc/cpuinfo', () => {
  it('a Raspberry Pi 4 (64- and 32-bit kernel) lacks aes and pmull; a Pi 5 has both', () => {
    expect(aesSupport(PI4, 'arm64')).toEqual({ missing: ['aes', 'pmull'] });
    expect(aesSupport(PI4_ARMV7, 'arm')).toEqual({ missing: ['aes', 'pmull'] });
    expect(aesSupport(PI5, 'arm64')).toEqual({ missing: [] });
  });

  it('x86: aes and pclmulqdq in the flags', () => {
    expect(aesSupport(X86_AES, 'x64')).toEqual({ missing: [] });
    expect(aesSupport(X86_NO_AES, 'x64')).toEqual({ missing: ['aes', 'pclmulqdq'] });
    expect(aesSupport(x86('sse2 aes'), 'x64')).toEqual({ missing: ['pclmulqdq'] });
  });

  it('a core without them counts (the sealing worker may run on any); a word that only contains "aes" does not count', () => {
    expect(aesSupport(core(0, 'fp asimd aes pmull') + core(1, 'fp asimd'), 'arm64')).toEqual({ missing: ['aes', 'pmull'] });
    expect(aesSupport(core(0, 'fp asimd aesx pmullx'), 'arm64')).toEqual({ missing: ['aes', 'pmull'] });
  });

  it('cannot tell: no feature line (hidden /proc/cpuinfo), an empty text, another architecture', () => {
    expect(aesSupport('processor\t: 0\n', 'arm64')).toBeUndefined();
    expect(aesSupport('', 'x64')).toBeUndefined();
    expect(aesSupport(PI4, 'riscv64')).toBeUndefined();
    // The arm Features line means nothing to an x86 reading, and the reverse.
    expect(aesSupport(PI4, 'x64')).toBeUndefined();
    expect(aesSupport(X86_NO_AES, 'arm64')).toBeUndefined();
  });

  it('readCpuinfo gives "" where there is no such file', () => {
    expect(readCpuinfo('/nonexistent/cpuinfo')).toBe('');
  });
});

describe('sealProfileWarning', () => {
  it('aes-256-gcm on a CPU without the instructions: one warning naming what is missing and what to set', () => {
    const w = sealProfileWarning('aes-256-gcm', PI4, 'arm64');
    expect(w).toMatch(/^spool\.encryption\.profile is aes-256-gcm, but this arm64 CPU lacks the aes and pmull instruction/);
    expect(w).toContain('spool.encryption.profile: chacha20-poly1305');
    expect(w).toContain('arm64-4c-nocrypto');
    expect(sealProfileWarning('aes-256-gcm', X86_NO_AES, 'x64')).toMatch(/lacks the aes and pclmulqdq/);
  });

  it('nothing to say: the instructions are there, another profile, or the CPU cannot be told', () => {
    expect(sealProfileWarning('aes-256-gcm', PI5, 'arm64')).toBeUndefined();
    expect(sealProfileWarning('aes-256-gcm', X86_AES, 'x64')).toBeUndefined();
    for (const p of ['chacha20-poly1305', 'gm', 'none'] as const) expect(sealProfileWarning(p, PI4, 'arm64')).toBeUndefined();
    expect(sealProfileWarning('aes-256-gcm', '', 'arm64')).toBeUndefined();
  });
});

describe('board profiles (firmware-config/profiles)', () => {
  const profiles = readdirSync(path.join(ROOT, 'firmware-config', 'profiles')).filter((n) => n.endsWith('.yaml'));

  it.each(profiles)('%s completes a device configuration that validates', (name) => {
    const t = tempDir();
    try {
      const f = path.join(t.dir, 'gateway.yaml');
      writeFileSync(f, `extends: ${path.join(ROOT, 'firmware-config', 'profiles', name)}\ndevice: { id: edge-1 }\nreceive: { aeTitle: EDGE, callers: [{ aeTitle: CT }] }\nspool: { dir: ${path.join(t.dir, 'spool')} }\n`);
      const c = loadConfig(f);
      // The board without the Cryptography Extension seals with ChaCha20-Poly1305; the others keep the default.
      expect(c.spool.encryption.profile).toBe(name === 'arm64-4c-nocrypto.yaml' ? 'chacha20-poly1305' : 'aes-256-gcm');
    } finally {
      t.cleanup();
    }
  });

  it('the nocrypto profile exists and keeps the 2 GB board limits', () => {
    expect(profiles).toContain('arm64-4c-nocrypto.yaml');
    const t = tempDir();
    try {
      const f = path.join(t.dir, 'gateway.yaml');
      const base = `device: { id: edge-1 }\nreceive: { aeTitle: EDGE, callers: [{ aeTitle: CT }] }\nspool: { dir: ${path.join(t.dir, 'spool')} }\n`;
      writeFileSync(f, `extends: ${path.join(ROOT, 'firmware-config/profiles/arm64-4c-nocrypto.yaml')}\n${base}`);
      const g = path.join(t.dir, 'gateway-2g.yaml');
      writeFileSync(g, `extends: ${path.join(ROOT, 'firmware-config/profiles/arm64-4c-2g.yaml')}\n${base}`);
      const nocrypto = loadConfig(f);
      const twoG = loadConfig(g);
      expect({ ...nocrypto, spool: { ...nocrypto.spool, encryption: twoG.spool.encryption } }).toEqual(twoG);
    } finally {
      t.cleanup();
    }
  });
});

describe('check-config says it once', () => {
  afterEach(() => vi.restoreAllMocks());

  it('for aes-256-gcm on a Raspberry Pi 4, not for chacha20-poly1305 there, nor on a board with the instructions', async () => {
    const t = tempDir();
    try {
      const warnings = async (profile: string, cpuinfo: string, arch: string) => {
        const { configFile } = await writeGatewayConfig({ dir: t.dir, spool: { encryption: { profile } } });
        const err = vi.spyOn(console, 'error').mockImplementation(() => undefined);
        vi.spyOn(console, 'log').mockImplementation(() => undefined);
        expect(checkConfigCommand(configFile, { cpuinfo, arch })).toBe(EXIT.ok);
        const lines = err.mock.calls.map((c) => String(c[0])).filter((l) => l.includes('instruction'));
        vi.restoreAllMocks();
        return lines;
      };
      const pi4 = await warnings('aes-256-gcm', PI4, 'arm64');
      expect(pi4).toHaveLength(1);
      expect(pi4[0]).toMatch(/^warning: spool\.encryption\.profile is aes-256-gcm, but this arm64 CPU lacks the aes and pmull/);
      expect(await warnings('chacha20-poly1305', PI4, 'arm64')).toEqual([]);
      expect(await warnings('aes-256-gcm', PI5, 'arm64')).toEqual([]);
    } finally {
      t.cleanup();
    }
  });
});
