/**
 * runGuest: one guest, start to end, in-process — create the VM, load the image, wire COM1 to the
 * caller, run the vCPU in its thread, and release everything whatever happens.
 */
import { readFile, stat } from 'node:fs/promises';
import { UsageError } from './errors.js';
import { IMAGE_FORMATS, loadImage, type FormatChoice, type ImageFormat } from './loader/image.js';
import { applyBootState } from './vm/cpu-setup.js';
import { parseMemorySize } from './units.js';
import { SerialBridge, type SerialInput, type SerialSink } from './vm/serial-bridge.js';
import type { ExitCounts } from './vm/vcpu-loop.js';
import { Vm } from './vm/vm.js';

export const DEFAULT_MEMORY = '16M';

export interface RunGuestOptions {
  /** A path to the image, or its bytes. */
  image: string | Uint8Array;
  /** Guest RAM: bytes, or a size such as '16M' (default 16M). */
  memory?: number | string;
  /** How to load the image (default: auto-detect). */
  format?: FormatChoice;
  /** Stop the guest after this many milliseconds (reason 'timeout'). */
  timeoutMs?: number;
  /** COM1 input: a stream (read as the guest consumes it), or all of it at once. */
  serialInput?: SerialInput;
  /** Called with COM1 output as it arrives; a returned promise holds back further output. */
  onSerial?: SerialSink;
  /** Keep the output in the result's `serial` (default true). */
  collectSerial?: boolean;
  /** Aborting stops the guest (reason 'stopped'). */
  signal?: AbortSignal;
  /**
   * In-kernel PIC/IOAPIC/LAPIC and PIT (default true). false gives a bare machine where HLT exits
   * to userspace and nothing interrupts the guest.
   */
  irqchip?: boolean;
}

export type RunReason = 'debug-exit' | 'halt' | 'reset' | 'timeout' | 'crash' | 'stopped';

export interface RunResult {
  reason: RunReason;
  /** The value written to the debug-exit port (whole, up to 32 bits); 0 for other reasons. */
  exitCode: number;
  /** COM1 output, decoded as UTF-8 ('' when collectSerial is false). */
  serial: string;
  /** COM1 output, byte for byte. */
  serialBytes: Buffer;
  /** Wall time from the first KVM_RUN to the end of the run. */
  durationMs: number;
  exits: ExitCounts;
  /** Present when reason is 'crash': what happened, and the vCPU's registers. */
  crash?: { description: string; state: string };
  format: ImageFormat;
}

export async function runGuest(options: RunGuestOptions): Promise<RunResult> {
  const memorySize = typeof options.memory === 'number' ? checkMemoryBytes(options.memory) : parseMemorySize(options.memory ?? DEFAULT_MEMORY);
  const format = options.format ?? 'auto';
  if (!IMAGE_FORMATS.includes(format)) throw new UsageError(`invalid format '${String(format)}': use one of ${IMAGE_FORMATS.join(', ')}`);
  const timeoutMs = options.timeoutMs;
  if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new UsageError(`invalid timeout ${timeoutMs}: it must be a positive number of milliseconds`);
  }
  const { bytes: image, name } = await readImage(options.image, memorySize);

  const vm = Vm.create({ memorySize, irqchip: options.irqchip ?? true });
  try {
    const vcpu = vm.createVcpu(0);
    const loaded = loadImage(image, vm.memory.bytes, format, name);
    applyBootState(vcpu, vm.memory.bytes, { mode: 'real', entry: loaded.entry });

    const collect = options.collectSerial ?? true;
    const chunks: Buffer[] = [];
    const onSerial = options.onSerial;
    const bridge = new SerialBridge((chunk) => {
      if (collect) chunks.push(chunk);
      return onSerial?.(chunk);
    }, options.serialInput);

    let stopReason: RunReason | undefined;
    const stop = (reason: RunReason): void => {
      stopReason ??= reason;
      vcpu.stop();
    };
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => stop('timeout'), timeoutMs);
    const onAbort = (): void => stop('stopped');
    options.signal?.addEventListener('abort', onAbort);
    const started = performance.now();
    const running = vcpu.run([bridge]);
    if (options.signal?.aborted) onAbort();
    let result;
    try {
      result = await running;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      await bridge.finish();
    }
    const durationMs = performance.now() - started;
    const serialBytes = Buffer.concat(chunks);
    const outcome = result.outcome;
    const base = { serial: serialBytes.toString('utf8'), serialBytes, durationMs, exits: result.exits, format: loaded.format };
    switch (outcome.reason) {
      case 'debug-exit':
        return { ...base, reason: 'debug-exit', exitCode: outcome.exitCode };
      case 'stopped':
        return { ...base, reason: stopReason ?? 'stopped', exitCode: 0 };
      case 'crash':
        return { ...base, reason: 'crash', exitCode: 0, crash: { description: outcome.description, state: outcome.state } };
      case 'halt':
      case 'reset':
        return { ...base, reason: outcome.reason, exitCode: 0 };
      default: {
        const never: never = outcome;
        throw new Error(`unreachable outcome ${JSON.stringify(never)}`);
      }
    }
  } finally {
    void vm.close(); // the kernel's VM teardown finishes in the background
  }
}

function checkMemoryBytes(bytes: number): number {
  return parseMemorySize(`${bytes}B`);
}

/** Reads the image, refusing what cannot be one before reading it whole. */
async function readImage(image: string | Uint8Array, memorySize: number): Promise<{ bytes: Uint8Array; name: string }> {
  if (typeof image !== 'string') return { bytes: image, name: 'image' };
  const name = `image '${image}'`;
  let size: number;
  try {
    const st = await stat(image);
    if (st.isDirectory()) throw new UsageError(`${name} is a directory: give the path of a guest binary`, 'EIMAGE');
    size = st.size;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw imageReadError(name, err);
  }
  if (size > memorySize) {
    throw new UsageError(`${name} is ${size} bytes, larger than guest RAM (${memorySize} bytes): raise --memory`, 'EIMAGE');
  }
  try {
    return { bytes: await readFile(image), name };
  } catch (err) {
    throw imageReadError(name, err);
  }
}

function imageReadError(name: string, err: unknown): UsageError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new UsageError(`${name} not found: check the path (build the bundled guests with \`npm run build:guests\`)`, 'EIMAGE');
  if (code === 'EACCES') return new UsageError(`${name} cannot be read (permission denied): fix its permissions`, 'EIMAGE');
  if (code === 'EISDIR') return new UsageError(`${name} is a directory: give the path of a guest binary`, 'EIMAGE');
  return new UsageError(`${name} cannot be read: ${(err as Error).message}`, 'EIMAGE');
}
