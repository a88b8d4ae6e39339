/**
 * SMP on /dev/kvm: guests/smp.mb.S brings its application processors up with INIT/SIPI through
 * the in-kernel LAPICs; each prints its APIC ID and counts itself with a locked instruction; the
 * guest exits with the count. The devices live in a board thread shared by the vCPU threads.
 */
import path from 'node:path';
import { expect, it } from 'vitest';
import { runGuest, startGuest } from '../../dist/index.js';
import { assertKvm, describeKvm, ROOT, runCli } from './helpers.js';

const SMP = path.join(ROOT, 'guests', 'build', 'smp.elf');
const OVERCOMMIT = /warning: \d+ vCPUs on \d+ host CPUs/;
const hostCpus = (await import('node:os')).availableParallelism();

describeKvm('--cpus N', () => {
  it.each([1, 2, 4, 8])(
    'brings up %i CPUs, each counted once',
    async (n) => {
      assertKvm();
      const r = await runCli(['run', '--cpus', String(n), '--timeout', '60s', SMP]);
      expect(r.status).toBe(n);
      const lines = r.stdout.toString().trimEnd().split('\n');
      expect(lines[0]).toBe('cpu 0 up'); // the bootstrap processor first
      expect(lines.at(-1)).toBe(`cpus: ${n}`);
      // Every APIC ID exactly once: the lock kept the lines whole and the counter exact.
      expect(lines.slice(0, -1).sort()).toEqual(Array.from({ length: n }, (_, i) => `cpu ${i} up`).sort());
      if (n > hostCpus) expect(r.stderr).toMatch(OVERCOMMIT);
      else expect(r.stderr).toBe('');
    },
    90_000,
  );

  it('a crash on an application processor ends the run for all vCPUs', async () => {
    const r = await runGuest({ image: SMP, cpus: 2, cmdline: 'ap-crash', timeoutMs: 60_000 });
    expect(r.reason).toBe('crash');
    expect(r.crash?.description).toBe('triple fault (KVM_EXIT_SHUTDOWN) on vCPU 1');
  });

  it('ends as a halt when the boot CPU halts for good and its APs were never started', async () => {
    const r = await runGuest({ image: path.join(ROOT, 'guests', 'build', 'halt.bin'), cpus: 2, timeoutMs: 60_000 });
    expect([r.reason, r.serial]).toEqual(['halt', 'halting\n']);
  });

  it('many VMs whose vCPUs add up past the host CPUs run without warning', async () => {
    const results = await Promise.all(Array.from({ length: hostCpus + 2 }, () => runGuest({ image: SMP, cpus: 1 })));
    for (const r of results) expect([r.exitCode, r.warnings]).toEqual([1, []]);
  });

  it('pause and stop reach every vCPU, the waiting application processor too', async () => {
    // spin.bin never starts its AP: vCPU 1 waits for INIT/SIPI inside KVM_RUN all along.
    let out = '';
    let spinning!: () => void;
    const seen = new Promise<void>((resolve) => (spinning = resolve));
    const onSerial = (chunk: Buffer): void => {
      out += chunk.toString();
      if (out.includes('spinning\n')) spinning();
    };
    const run = await startGuest({ image: path.join(ROOT, 'guests', 'build', 'spin.bin'), cpus: 2, timeoutMs: 60_000, onSerial });
    await seen; // vCPU 0 spins without exits from here on; vCPU 1 waits for INIT/SIPI
    await run.pause();
    expect(run.state).toBe('paused');
    const { regs } = run.registers();
    expect(run.registers().regs).toEqual(regs);
    run.resume();
    expect(run.state).toBe('running');
    run.stop();
    const r = await run.result;
    expect([r.reason, r.serial]).toEqual(['stopped', 'spinning\n']);
  });

  it('rejects bad counts with exit status 2 and the limit', async () => {
    for (const bad of ['0', 'two', '100000']) {
      const r = await runCli(['run', '--cpus', bad, SMP]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`invalid --cpus '${bad}'.*\\d+.*KVM_CAP_MAX_VCPUS`));
    }
  });
});
