/**
 * `tskvm doctor` against the real host: its answers match independent reads of /dev/kvm (the
 * addon's raw KVM_CHECK_EXTENSION), /proc/cpuinfo and /sys; a missing device exits 1 with the fix.
 */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import type { Diagnosis } from '../../src/doctor.js';
import { native } from '../../dist/kvm/native.js';
import { assertKvm, describeKvm, runCli } from './helpers.js';

function parse(stdout: Buffer): Diagnosis {
  return JSON.parse(stdout.toString()) as Diagnosis;
}

describeKvm('tskvm doctor', () => {
  it('reports a usable host: exit 0, a readable report on stdout', async () => {
    assertKvm();
    const r = await runCli(['doctor']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const text = r.stdout.toString();
    expect(text).toMatch(/API version\s+12 \(ok\)/);
    expect(text).toMatch(/KVM_CAP_USER_MEMORY\s+3\s+present\s+required/);
    expect(text).toMatch(/ffi\s+loads \(ffi-rs calling libc\)/);
    expect(text).toContain('Result: tskvm can run guests here.');
  });

  it('--json: API version, capabilities, CPU, vCPUs and THP match independent reads', async () => {
    assertKvm();
    const r = await runCli(['doctor', '--json']);
    expect(r.status).toBe(0);
    const d = parse(r.stdout);
    expect(d.ok).toBe(true);
    expect(d.problems).toEqual([]);
    expect(d.device.accessible).toBe(true);
    expect(d.apiVersion).toBe(12);

    // Each capability against a direct KVM_CHECK_EXTENSION through the addon.
    const n = native();
    const fd = n.open('/dev/kvm');
    expect(fd).toBeGreaterThanOrEqual(0);
    try {
      expect(d.capabilities.map((c) => c.number).sort((a, b) => a - b)).toEqual([
        0, 3, 4, 7, 9, 14, 23, 25, 33, 35, 37, 39, 41, 50, 55, 56, 60, 66, 136, 208,
      ]);
      for (const cap of d.capabilities) {
        const value = n.ioctl(fd, n.ioctls.KVM_CHECK_EXTENSION, cap.number);
        expect({ name: cap.name, present: cap.present }).toEqual({ name: cap.name, present: value > 0 });
      }
    } finally {
      n.close(fd);
    }
    expect(d.maxVcpus).toBeGreaterThan(0);

    const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
    expect(d.cpu.vendor).toBe(/^vendor_id\s*:\s*(.*)$/m.exec(cpuinfo)![1]!.trim());
    const flags = /^flags\s*:\s*(.*)$/m.exec(cpuinfo)![1]!.split(/\s+/);
    expect(d.cpu.hypervisor).toBe(flags.includes('hypervisor'));
    expect(d.cpu.virtualisationFlags).toEqual(['vmx', 'svm'].filter((f) => flags.includes(f)));

    const thp = /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? null;
    expect(d.memory.transparentHugepages).toBe(thp);
    // The backend in use is the addon, unless this run chose ffi-rs (npm run test:ffi).
    const expected = process.env.TSKVM_BACKEND === 'ffi' ? 'ffi' : 'addon';
    expect(d.backend).toMatchObject({
      used: expected,
      addon: { loaded: true, exists: true, error: null },
      ffi: { loaded: true, error: null },
    });
  });

  it('a missing device: exit 1, naming the problem and the fix (text and JSON)', async () => {
    const env = { TSKVM_KVM_DEVICE: '/nonexistent' };
    const text = await runCli(['doctor'], { env });
    expect(text.status).toBe(1);
    const out = text.stdout.toString();
    expect(out).toContain('tskvm cannot run guests here');
    expect(out).toMatch(/\/nonexistent is not available \(ENOENT/);
    expect(out).toContain('modprobe kvm_intel');

    const json = await runCli(['doctor', '--json'], { env });
    expect(json.status).toBe(1);
    const d = parse(json.stdout);
    expect(d.ok).toBe(false);
    expect(d.device).toMatchObject({ path: '/nonexistent', exists: false, accessible: false, error: { code: 'ENOKVM', errno: 2 } });
    expect(d.apiVersion).toBeNull();
    expect(d.problems.join('\n')).toMatch(/\/nonexistent is not available.*modprobe/);
  });
});
