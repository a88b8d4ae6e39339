/**
 * Real libvirt as the judge of interoperability: `virsh -c test:///default define --validate`
 * checks domain XML against libvirt's schema and its own parser, with no daemon and no KVM.
 * Debian's libvirt-clients provides virsh. Tests that need it skip where it is missing, unless
 * TSKVM_REQUIRE_VIRSH=1 (CI), where a missing virsh fails them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';

function findVirsh(): boolean {
  try {
    execFileSync('virsh', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const haveVirsh = findVirsh();
export const requireVirsh = process.env.TSKVM_REQUIRE_VIRSH === '1';

/** it() for tests that need virsh: skipped without it, failing without it under TSKVM_REQUIRE_VIRSH=1. */
export function itVirsh(name: string, body: () => unknown, timeout?: number): void {
  if (!haveVirsh && requireVirsh) {
    it(name, () => {
      throw new Error('TSKVM_REQUIRE_VIRSH=1 but virsh is missing: apt-get install -y libvirt-clients');
    });
    return;
  }
  it.skipIf(!haveVirsh)(name, body, timeout);
}

/** Defines `xml` in libvirt's test driver with schema validation; returns virsh's status and output. */
export function virshDefine(xml: string): { status: number | null; output: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tskvm-virsh-'));
  try {
    const file = path.join(dir, 'domain.xml');
    writeFileSync(file, xml);
    const r = spawnSync('virsh', ['-q', '-c', 'test:///default', 'define', '--validate', file], { encoding: 'utf8' });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Asserts that libvirt accepts `xml` (inside itVirsh: virsh is there). */
export function expectLibvirtAccepts(xml: string): void {
  const r = virshDefine(xml);
  expect(r.output, `virsh define --validate refused:\n${xml}`).not.toMatch(/error/i);
  expect(r.status).toBe(0);
}
