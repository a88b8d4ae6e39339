/**
 * Run options are checked before anything exists: every bad value is a UsageError naming the
 * option (in the library's terms) and the fix; good values come out normalised.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { DEFAULT_MEMORY, PC_MAX_VCPUS, validateRunOptions } from '../../src/machine/options.js';
import { parseMemorySize } from '../../src/units.js';

const bad = (options: unknown, message: RegExp, code = 'EUSAGE'): void => {
  let err: unknown;
  try {
    validateRunOptions(options);
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${JSON.stringify(options, (_k, v) => (typeof v === 'bigint' ? String(v) : v))} to be refused`).toBeInstanceOf(
    UsageError,
  );
  expect((err as UsageError).code).toBe(code);
  expect((err as Error).message).toMatch(message);
};

describe('validateRunOptions', () => {
  it('normalises a minimal call', () => {
    const config = validateRunOptions({ image: 'guest.bin' });
    expect(config).toMatchObject({
      image: { path: 'guest.bin' },
      memorySize: parseMemorySize(DEFAULT_MEMORY),
      format: 'auto',
      modules: [],
      cpus: 1,
      irqchip: true,
      collectSerial: true,
      timeoutMs: undefined,
      trace: undefined,
      step: undefined,
      gdb: undefined,
    });
    expect(config.serial).toEqual({ COM1: {} });
  });

  it('takes bytes, sizes in bytes or text, modules, ports and debugging options', () => {
    const input = new PassThrough();
    const output = (): void => {};
    const config = validateRunOptions({
      image: Uint8Array.of(0xf4),
      memory: 2 * 2 ** 20,
      modules: ['a.bin', { name: 'b', bytes: Uint8Array.of(1), cmdline: 'x=1' }],
      serialPorts: { COM1: { input, output }, COM2: { output } },
      trace: { kinds: ['io', 'hlt'], ports: [[0x3f8, 0x3ff]] },
      step: {},
      gdb: { port: 0, wait: true },
      timeoutMs: 2 ** 40,
    });
    expect(config.image).toEqual({ name: 'guest', bytes: Uint8Array.of(0xf4) });
    expect(config.memorySize).toBe(2 * 2 ** 20);
    expect(config.modules).toEqual([{ path: 'a.bin' }, { name: 'b', bytes: Uint8Array.of(1), cmdline: 'x=1' }]);
    expect(config.serial.COM1).toEqual({ input, output });
    expect(config.serial.COM2).toEqual({ output });
    expect(config.trace).toEqual({ fd: 2, kinds: ['io', 'hlt'], ports: [[0x3f8, 0x3ff]] });
    expect(config.step).toEqual({ fd: 2 });
    expect(config.gdb).toEqual({ port: 0, wait: true });
    // gdb with several vCPUs (each a thread), and a register layout chosen.
    expect(validateRunOptions({ image: 'x', cpus: 2, gdb: { port: 0, arch: 'x86-64' } }).gdb).toEqual({
      port: 0,
      wait: false,
      arch: 'x86-64',
    });
    expect(config.timeoutMs).toBe(2 ** 40); // longer than setTimeout's limit: the run chains timers
    expect(validateRunOptions({ image: 'x', serialInput: 'typed', onSerial: output }).serial.COM1).toEqual({ input: 'typed', output });
  });

  it('refuses what is not an options object or has no usable image', () => {
    bad(undefined, /needs an options object with at least `image`/);
    bad(null, /needs an options object.*not null/);
    bad({}, /invalid options\.image: give a file path or the image's bytes/, 'EIMAGE');
    bad({ image: 42 }, /invalid options\.image.*not number 42/, 'EIMAGE');
    bad({ image: '' }, /invalid options\.image/, 'EIMAGE');
    bad({ image: {} }, /invalid options\.image.*not a Object/, 'EIMAGE');
    bad({ image: null }, /invalid options\.image.*not null/, 'EIMAGE');
  });

  it('refuses bad sizes, formats, counts and timeouts', () => {
    bad({ image: 'x', memory: '12Q' }, /invalid memory size '12Q'/);
    bad({ image: 'x', memory: 0 }, /invalid options\.memory/);
    bad({ image: 'x', memory: 2 ** 64 }, /invalid options\.memory/);
    bad({ image: 'x', memory: 4097 }, /whole number of 4K pages/);
    bad({ image: 'x', format: 'coff' }, /invalid options\.format 'coff': use one of auto, flat/);
    for (const cpus of [0, -1, 1.5, PC_MAX_VCPUS + 1, 1024, '2', NaN]) bad({ image: 'x', cpus }, /invalid options\.cpus .*from 1 to 254/);
    for (const timeoutMs of [0, -1, NaN, Infinity, '10s']) bad({ image: 'x', timeoutMs }, /invalid timeout options\.timeoutMs/);
  });

  it('refuses bad serial endpoints, signals and callbacks', () => {
    bad({ image: 'x', serialInput: 42 }, /invalid options\.serialInput: give a string, a Uint8Array or a readable stream/);
    bad({ image: 'x', onSerial: 'stdout' }, /invalid options\.onSerial: give a function/);
    bad({ image: 'x', serialPorts: { COM5: {} } }, /unknown serial port 'COM5'/);
    bad({ image: 'x', serialPorts: { COM2: 3 } }, /invalid options\.serialPorts\.COM2/);
    bad({ image: 'x', serialPorts: { COM1: {} }, serialInput: 'a' }, /both connect COM1/);
    bad({ image: 'x', signal: 'x' }, /invalid options\.signal: give an AbortSignal/);
    bad({ image: 'x', signal: {} }, /invalid options\.signal/);
  });

  it('refuses bad modules, flags, trace, step and gdb options', () => {
    bad({ image: 'x', modules: 'a.bin' }, /invalid options\.modules: give an array/);
    bad({ image: 'x', modules: [42] }, /invalid options\.modules\[0\]/, 'EIMAGE');
    bad({ image: 'x', modules: [{ name: 'm' }] }, /invalid options\.modules\[0\]/, 'EIMAGE');
    bad({ image: 'x', longMode: 'yes' }, /invalid options\.longMode: give true or false/);
    bad({ image: 'x', trace: { kinds: ['bogus'] } }, /invalid options\.trace\.kinds/);
    bad({ image: 'x', trace: { ports: [[10, 1]] } }, /invalid options\.trace\.ports/);
    bad({ image: 'x', trace: { fd: -1 } }, /invalid options\.trace\.fd/);
    bad({ image: 'x', step: 1 }, /invalid options\.step/);
    bad({ image: 'x', gdb: { port: 65536 } }, /invalid options\.gdb\.port/);
    bad({ image: 'x', gdb: { port: 1, onListening: 1 } }, /onListening/);
    bad({ image: 'x', gdb: { port: 1, arch: 'arm' } }, /invalid options\.gdb\.arch .*'arm'.*use one of i386, x86-64/);
    bad({ image: 'x', gdb: { port: 1, onHint: 'stderr' } }, /invalid options\.gdb\.onHint/);
    bad({ image: 'x', cmdline: 7 }, /invalid options\.cmdline/);
  });
});
