/**
 * The VM lifecycle on /dev/kvm: pause, resume and stop work whatever the guest is doing — in
 * KVM_RUN with no exits, halted inside the kernel, or making an exit after another — and the
 * registers read while paused hold still. Both places a one-vCPU exit loop can run are held to
 * it: a worker thread (the library's default) and the caller's own thread, in slices between
 * which its event loop runs (vcpuThread 'caller', what `tskvm run` uses).
 */
import { describe, expect, it } from 'vitest';
import { startGuest as startGuestIn, type RunGuestOptions } from '../../dist/index.js';
import { assertKvm, describeKvm, guest } from './helpers.js';

/** sti; 1: hlt; jmp 1b — halted in the kernel with interrupts on (nothing is programmed to fire). */
const HALT_IN_KERNEL = new Uint8Array([0xfb, 0xf4, 0xeb, 0xfd]);
const settle = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once `check` holds (looked at every 10 ms): tests wait for states, not for a guess at how long they take. */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await settle(10);
}

/** onSerial that records output, and a promise for when `text` has appeared in it. */
function watchSerial(text: string): { onSerial: (chunk: Buffer) => void; seen: Promise<void> } {
  let out = '';
  let seen!: () => void;
  const promise = new Promise<void>((resolve) => (seen = resolve));
  return {
    onSerial: (chunk) => {
      out += chunk.toString();
      if (out.includes(text)) seen();
    },
    seen: promise,
  };
}

describe.each(['worker', 'caller'] as const)('with the exit loop on the %s thread', (vcpuThread) => {
  const startGuest = (options: RunGuestOptions): ReturnType<typeof startGuestIn> => startGuestIn({ ...options, vcpuThread });

  describeKvm('pause, resume and stop', () => {
    it('in KVM_RUN (a guest that spins without exits)', async () => {
      assertKvm();
      const serial = watchSerial('spinning\n');
      const run = await startGuest({ image: guest('spin'), timeoutMs: 60_000, onSerial: serial.onSerial });
      await serial.seen; // the guest runs, spinning without exits from here on
      expect(run.state).toBe('running');
      await run.pause();
      expect(run.state).toBe('paused');
      const first = run.registers();
      await settle(50);
      const second = run.registers();
      expect(second.regs.rip).toBe(first.regs.rip); // nothing runs while paused
      expect(second.regs).toEqual(first.regs);
      expect(first.sregs.cs.selector).toBe(0x1000);
      run.resume();
      expect(run.state).toBe('running');
      await settle(50);
      await run.pause(); // and again
      expect(run.state).toBe('paused');
      run.stop(); // stopping a paused guest
      const r = await run.result;
      expect([r.reason, r.serial]).toEqual(['stopped', 'spinning\n']);
      expect(run.state).toBe('stopped');
    });

    it('halted in the kernel (hlt with interrupts on)', async () => {
      const run = await startGuest({ image: HALT_IN_KERNEL, timeoutMs: 60_000 });
      await until(() => run.state === 'running');
      await settle(100); // at the hlt by now, halted in the kernel
      await run.pause();
      const { regs } = run.registers();
      expect(regs.rip === 2n || regs.rip === 1n).toBe(true); // at or just after the hlt
      expect(regs.rflags & 0x200n).toBe(0x200n); // IF
      run.resume();
      await settle(50);
      expect(run.state).toBe('running');
      run.stop(); // stopping a running, halted guest
      expect((await run.result).reason).toBe('stopped');
    });

    it('between exits, and the guest finishes its work as if never paused', async () => {
      const run = await startGuest({ image: guest('pioloop'), timeoutMs: 60_000 });
      for (let i = 0; i < 3; i++) {
        await settle(30);
        if (run.state !== 'running') break;
        await run.pause();
        expect(run.state).toBe('paused');
        run.resume();
      }
      const r = await run.result;
      expect([r.reason, r.exitCode, r.exits.io]).toEqual(['debug-exit', 0, 200_001]);
    });

    it('pause and resume are no-ops once the run has ended', async () => {
      const run = await startGuest({ image: guest('oneexit') });
      const r = await run.result;
      expect(r.exitCode).toBe(7);
      expect(run.state).toBe('stopped');
      await run.pause();
      run.resume();
      run.stop();
      expect(() => run.registers()).toThrow(/only while the guest is paused/);
    });
  });

  describeKvm("the caller's event loop", () => {
    it('keeps running while the guest spins without exits, and a timeout ends the guest', async () => {
      const serial = watchSerial('spinning\n');
      const run = await startGuest({ image: guest('spin'), timeoutMs: 60_000, onSerial: serial.onSerial });
      await serial.seen;
      // Timers of the caller fire while the vCPU spins (on the caller's thread: between slices).
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 5);
      await until(() => ticks >= 5);
      clearInterval(ticker);
      expect(run.state).toBe('running');
      run.stop();
      expect((await run.result).reason).toBe('stopped');
    });

    it('takes COM1 input while the guest polls for it', async () => {
      const echo = await startGuest({ image: guest('echo'), serialInput: 'abc\0', timeoutMs: 60_000 });
      expect(await echo.result).toMatchObject({ reason: 'debug-exit', exitCode: 3, serial: 'abc' });
    });
  });
});
