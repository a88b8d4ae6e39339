/**
 * runGuest() on /dev/kvm: every way a run can end, serial I/O both ways, and bad input.
 * Imports the built library (dist/), as a user of the package would.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { expect, it } from 'vitest';
import { runGuest, UsageError } from '../../dist/index.js';
import { assertKvm, describeKvm, guest } from './helpers.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'tskvm-lib-'));
const MiB = 1 << 20;

describeKvm('runGuest on /dev/kvm', () => {
  it('runs hello: serial output and the debug-exit code', async () => {
    assertKvm();
    const r = await runGuest({ image: guest('hello') });
    expect(r.reason).toBe('debug-exit');
    expect(r.exitCode).toBe(42);
    expect(r.serial).toBe('Hello from a tskvm guest!\n');
    expect(r.format).toBe('flat');
    expect(r.exits.io).toBeGreaterThan(r.serial.length); // a THRE poll and a THR write per byte
    expect(r.durationMs).toBeGreaterThan(0);
  });

  it('reports the whole debug-exit value for 1-, 2- and 4-byte writes', async () => {
    const one = await runGuest({ image: guest('oneexit') });
    expect([one.reason, one.exitCode, one.exits.io]).toEqual(['debug-exit', 7, 1]);
    const word = await runGuest({ image: guest('exitword') });
    expect([word.reason, word.exitCode]).toEqual(['debug-exit', 0x1234]);
  });

  it('ends with halt when the guest halts with nothing to wake it', async () => {
    // With the in-kernel irqchip HLT sleeps in the kernel: tskvm finds it halted with IF=0.
    const r = await runGuest({ image: guest('halt') });
    expect(r.reason).toBe('halt');
    expect(r.exitCode).toBe(0);
    expect(r.serial).toBe('halting\n');
    expect(r.exits.hlt).toBe(0);
    expect(r.exits.intr).toBeGreaterThanOrEqual(1);
  });

  it('ends with halt on KVM_EXIT_HLT on a machine without an irqchip', async () => {
    const r = await runGuest({ image: guest('halt'), irqchip: false });
    expect([r.reason, r.serial, r.exits.hlt]).toEqual(['halt', 'halting\n', 1]);
  });

  it('ends with reset on an i8042 reset', async () => {
    const r = await runGuest({ image: guest('reset') });
    expect(r.reason).toBe('reset');
    expect(r.serial).toBe('resetting\n');
  });

  it('kicks a spinning guest out of KVM_RUN at the timeout', async () => {
    const r = await runGuest({ image: guest('spin'), timeoutMs: 300 });
    expect(r.reason).toBe('timeout');
    expect(r.serial).toBe('spinning\n');
    expect(r.durationMs).toBeGreaterThanOrEqual(290);
  });

  it('stops a spinning guest when the AbortSignal fires', async () => {
    const abort = new AbortController();
    const r = await runGuest({
      image: guest('spin'),
      signal: abort.signal,
      onSerial: () => abort.abort(),
    });
    expect(r.reason).toBe('stopped');
  });

  it('reports a triple fault as a crash with the registers', async () => {
    const r = await runGuest({ image: guest('triple'), timeoutMs: 20_000 });
    expect(r.reason).toBe('crash');
    expect(r.crash?.description).toBe('triple fault (KVM_EXIT_SHUTDOWN)');
    expect(r.crash?.state).toMatch(/RIP=[0-9a-f]{16}/);
    expect(r.crash?.state).toMatch(/mode=protected/); // triple.S faults from 32-bit protected mode
    expect(r.crash?.state).toMatch(/CS {2}=[0-9a-f]{4} base=[0-9a-f]{16} limit=/);
    expect(r.crash?.state).toMatch(/CR0=[0-9a-f]{7}1 /); // PE set
    expect(r.exits.shutdown).toBe(1);
  });

  it('handles string I/O (rep outsb, rep insb from an unassigned port)', async () => {
    const r = await runGuest({ image: guest('strio') });
    expect(r.serial).toBe('String I/O: rep outsb works\ninsb ok\n');
    expect([r.reason, r.exitCode]).toEqual(['debug-exit', 0]);
  });

  it('reads all ones and ignores writes at unassigned guest-physical addresses', async () => {
    const r = await runGuest({ image: guest('mmio'), memory: '1M' });
    expect(r.serial).toBe('mmio ok\n');
    expect(r.exitCode).toBe(0);
    expect(r.exits.mmio).toBeGreaterThanOrEqual(3);
  });

  it('boots a 512-byte boot sector at 0000:7C00 with DL=0x80', async () => {
    const r = await runGuest({ image: guest('bootsector.boot') });
    expect(r.format).toBe('bootsector');
    expect(r.serial).toBe('Hello from the boot sector\ndl ok\n');
    expect(r.exitCode).toBe(0x55);
  });

  it('delivers every byte of a 100 KiB serial input in order', async () => {
    const input = Buffer.alloc(100 * 1024);
    for (let i = 0; i < input.length; i++) input[i] = 1 + ((i * 7) % 255); // never NUL
    // A stream in small chunks, so the RX ring and the stream's pause/resume both get exercised.
    const chunks = Array.from({ length: input.length / 1024 }, (_, i) => input.subarray(i * 1024, (i + 1) * 1024));
    const r = await runGuest({ image: guest('echo'), serialInput: Readable.from([...chunks, Buffer.from([0])]) });
    expect(r.reason).toBe('debug-exit');
    expect(r.exitCode).toBe(input.length);
    expect(r.serialBytes.equals(input)).toBe(true);
  });

  it('loses no byte of a megabyte of output to a slow reader, and the vCPU keeps running', async () => {
    const chunkSizes: number[] = [];
    const r = await runGuest({
      image: guest('bigout'),
      // The reader takes nothing for a second after the first chunk.
      onSerial: async (chunk) => {
        chunkSizes.push(chunk.length);
        if (chunkSizes.length === 1) await new Promise((resolve) => setTimeout(resolve, 1000));
      },
    });
    expect([r.reason, r.exitCode]).toEqual(['debug-exit', 0]);
    expect(r.serialBytes.length).toBe(MiB);
    const expected = Buffer.alloc(MiB);
    for (let i = 0; i < MiB; i++) expected[i] = i & 0xff;
    expect(r.serialBytes.equals(expected)).toBe(true);
    // What the guest wrote while the reader slept arrives as one large chunk right after: the
    // vCPU kept running (a guest stuck behind the reader would have produced nothing).
    expect(chunkSizes[1]).toBeGreaterThanOrEqual(4096);
  }, 300_000); // ~12 s alone; far longer while other test files load both CPUs

  it('runs several VMs at once in one process', async () => {
    const results = await Promise.all(Array.from({ length: 6 }, () => runGuest({ image: guest('hello') })));
    for (const r of results) expect([r.exitCode, r.serial]).toEqual([42, 'Hello from a tskvm guest!\n']);
  });

  it('takes the image as bytes', async () => {
    const r = await runGuest({ image: new Uint8Array([0xb0, 0x09, 0xe6, 0xf4]) }); // mov $9,%al; out %al,$0xf4
    expect([r.reason, r.exitCode]).toEqual(['debug-exit', 9]);
  });
});

describeKvm('runGuest rejects bad input with a UsageError', () => {
  const rejects = async (options: Parameters<typeof runGuest>[0], code: string, message: RegExp): Promise<void> => {
    const err = await runGuest(options).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).code).toBe(code);
    expect((err as Error).message).toMatch(message);
  };

  it('missing, empty, directory, too large', async () => {
    await rejects({ image: path.join(tmp, 'nope.bin') }, 'EIMAGE', /not found: check the path/);
    const empty = path.join(tmp, 'empty.bin');
    writeFileSync(empty, '');
    await rejects({ image: empty }, 'EIMAGE', /is empty/);
    await rejects({ image: tmp }, 'EIMAGE', /is a directory/);
    const big = path.join(tmp, 'big.bin');
    writeFileSync(big, Buffer.alloc(2 * MiB));
    await rejects({ image: big, memory: '1M' }, 'EIMAGE', /larger than guest RAM.*raise options\.memory to at least 2M/);
    // Fits in RAM but not above the flat load address.
    await rejects({ image: Buffer.alloc(MiB - 4096), memory: '1M' }, 'EIMAGE', /does not fit.*at least/);
  });

  it('malformed memory sizes, timeouts and formats', async () => {
    await rejects({ image: guest('hello'), memory: '12Q' }, 'EUSAGE', /invalid memory size '12Q'/);
    await rejects({ image: guest('hello'), memory: '0' }, 'EUSAGE', /larger than 0/);
    await rejects({ image: guest('hello'), timeoutMs: -1 }, 'EUSAGE', /invalid timeout/);
    await rejects({ image: guest('hello'), format: 'coff' as never }, 'EUSAGE', /invalid options\.format 'coff'/);
    await rejects({ image: guest('hello'), format: 'bootsector' }, 'EIMAGE', /exactly 512/);
  });
});
