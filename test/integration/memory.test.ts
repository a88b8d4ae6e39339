/**
 * Memory over-commit as a KVM user expects it: guest RAM is reserved, not committed, so it costs
 * host memory only where the guest touches it; --mem-prealloc commits it up front; --ksm and
 * --hugepages show up as the mapping's madvise flags. Read from /proc/self/smaps.
 */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { runGuest, Vm } from '../../dist/index.js';
import { assertKvm, describeKvm, guest, runCli } from './helpers.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** The smaps entry of the mapping that starts at `address`: its Rss in bytes and its VmFlags. */
function mapping(address: bigint): { rss: number; flags: string[] } {
  const smaps = readFileSync('/proc/self/smaps', 'utf8');
  const start = address.toString(16);
  const at = smaps.split('\n').findIndex((line) => line.startsWith(`${start}-`));
  if (at < 0) throw new Error(`no mapping at 0x${start}`);
  const lines = smaps.split('\n').slice(at + 1);
  const field = (name: string): string => lines.find((l) => l.startsWith(`${name}:`))!.split(/:\s+/)[1]!;
  return { rss: Number(field('Rss').split(' ')[0]) * 1024, flags: field('VmFlags').trim().split(' ') };
}

describeKvm('guest RAM is reserved, not committed', () => {
  it('a 4 GiB guest that touches 1 MiB costs about 1 MiB', async () => {
    assertKvm();
    const vm = Vm.create({ memorySize: 4 * GiB });
    try {
      expect(mapping(vm.memory.hostAddr).rss).toBe(0);
      vm.memory.bytes.fill(1, 16 * MiB, 17 * MiB);
      const { rss } = mapping(vm.memory.hostAddr);
      expect(rss).toBeGreaterThanOrEqual(MiB);
      expect(rss).toBeLessThan(3 * MiB); // a huge page or two at most
    } finally {
      await vm.close();
    }
  });

  it('--mem-prealloc commits all of it up front', async () => {
    const vm = Vm.create({ memorySize: 64 * MiB, prealloc: true });
    try {
      expect(mapping(vm.memory.hostAddr).rss).toBe(64 * MiB);
      expect(vm.memory.bytes.every((b: number) => b === 0)).toBe(true);
    } finally {
      await vm.close();
    }
  });

  it('--ksm marks the RAM mergeable and --hugepages asks for huge pages', async () => {
    const vm = Vm.create({ memorySize: 64 * MiB, ksm: true, hugepages: true });
    try {
      const { flags } = mapping(vm.memory.hostAddr);
      expect(flags).toContain('mg'); // MADV_MERGEABLE
      expect(flags).toContain('hg'); // MADV_HUGEPAGE
    } finally {
      await vm.close();
    }
  });

  it('runs a guest larger than the host has, with a warning', async () => {
    const meminfo = readFileSync('/proc/meminfo', 'utf8');
    const availableKiB = Number(/^MemAvailable:\s+(\d+) kB$/m.exec(meminfo)![1]);
    if (availableKiB * 1024 >= 4 * GiB) {
      // This host has more than the largest guest tskvm makes: check the library says nothing.
      const r = await runGuest({ image: guest('hello'), memory: '4G' });
      expect([r.exitCode, r.warnings]).toEqual([42, []]);
      return;
    }
    const r = await runCli(['run', '--memory', '4G', guest('hello')]);
    expect(r.status).toBe(42);
    expect(r.stderr).toMatch(/warning: guest RAM \(4096 MiB\) is larger than the host's available memory/);
  });

  it('--ksm reports the merged pages and says when KSM is off', async () => {
    const r = await runCli(['run', '--ksm', guest('hello')]);
    expect(r.status).toBe(42);
    expect(r.stderr).toMatch(/^tskvm: ksm: \d+ pages of this process merged \(KSM (on|off)\)$/m);
    if (readFileSync('/sys/kernel/mm/ksm/run', 'utf8').trim() === '0') expect(r.stderr).toMatch(/warning: KSM is off/);
  });
});
