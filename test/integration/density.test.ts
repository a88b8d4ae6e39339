/**
 * Many VMs in one process: 64 guests at once, each with its own vCPU thread, and nothing left
 * behind afterwards — threads, fds and mappings counted in /proc/self — whether the runs end
 * normally, are stopped, or fail.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { releaseIdleResources, runGuest, startGuest } from '../../dist/index.js';
import { assertKvm, describeKvm, guest, liveThreads } from './helpers.js';

/** What a VM holds in this process: threads, fds, and its guest RAM / kvm_run mappings. */
function resources(): { threads: number; fds: number; vmMappings: number } {
  const maps = readFileSync('/proc/self/maps', 'utf8').split('\n');
  return {
    threads: liveThreads(),
    fds: readdirSync('/proc/self/fd').length,
    // Guest RAM is shared anonymous memory ("/dev/zero (deleted)"); kvm_run is a vCPU fd mapping.
    vmMappings: maps.filter((line) => line.includes('/dev/zero (deleted)') || line.includes('kvm-vcpu')).length,
  };
}

describeKvm('64 VMs in one process', () => {
  it('run concurrently and leave no thread, fd or mapping behind', async () => {
    assertKvm();
    await releaseIdleResources();
    const before = resources();
    const results = await Promise.all(Array.from({ length: 64 }, () => runGuest({ image: guest('hello') })));
    for (const r of results) expect([r.reason, r.exitCode, r.serial]).toEqual(['debug-exit', 42, 'Hello from a tskvm guest!\n']);
    await releaseIdleResources();
    expect(resources()).toEqual(before);
  }, 120_000);

  it('leave nothing behind when stopped or when they fail', async () => {
    await releaseIdleResources();
    const before = resources();
    const runs = await Promise.all(Array.from({ length: 16 }, () => startGuest({ image: guest('spin') })));
    runs.forEach((run) => run.stop());
    for (const r of await Promise.all(runs.map((run) => run.result))) expect(r.reason).toBe('stopped');
    const failures = await Promise.allSettled(Array.from({ length: 8 }, () => runGuest({ image: guest('hello'), format: 'bootsector' })));
    expect(failures.every((f) => f.status === 'rejected')).toBe(true);
    const crashes = await Promise.all(Array.from({ length: 8 }, () => runGuest({ image: guest('triple') })));
    expect(crashes.every((r) => r.reason === 'crash')).toBe(true);
    await releaseIdleResources();
    expect(resources()).toEqual(before);
  }, 120_000);
});
