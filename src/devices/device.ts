/**
 * The contract between the buses and the devices on them. Devices are pure state machines: they
 * see an offset inside their own range and never do I/O of their own; whatever they need from the
 * host (an output sink, an input source, a way to end the run) is injected when they are built.
 */

/** Width of a port access in bytes, as KVM reports it in kvm_run.io.size. */
export type PioSize = 1 | 2 | 4;

/** A device on the port-I/O bus. `offset` is relative to the base it was registered at. */
export interface PioDevice {
  /** The value the guest reads; only the low `size` bytes are used. */
  pioRead(offset: number, size: PioSize): number;
  pioWrite(offset: number, size: PioSize, value: number): void;
}

/** A device on the MMIO bus. `data` is the access itself (1–8 bytes), little-endian. */
export interface MmioDevice {
  mmioRead(offset: number, data: Uint8Array): void;
  mmioWrite(offset: number, data: Uint8Array): void;
}

/** All ones for a 1-, 2- and 4-byte access: what an unassigned port reads (an ISA bus nobody drives). */
export const PIO_ALL_ONES: Readonly<Record<PioSize, number>> = { 1: 0xff, 2: 0xffff, 4: 0xffffffff };
/** What each byte of an unassigned MMIO read holds. */
export const MMIO_ALL_ONES_BYTE = 0xff;

/** Why a device ended the run: a debug-exit write, a reset, or ACPI S5 (soft-off) through PM1a control. */
export type MachineStop = { reason: 'debug-exit'; exitCode: number } | { reason: 'reset' } | { reason: 'poweroff' };

/** The general registers an I/O exit may read and change (KVM_GET_REGS / KVM_SET_REGS names). */
export type IoCpuRegister = 'rax' | 'rbx' | 'rcx' | 'rdx' | 'rsi' | 'rdi';

/**
 * The vCPU's registers during one I/O exit, for the rare device that needs them (QEMU's vmport).
 * The exit loop fetches them (KVM_GET_REGS) on the first `get()` or `set()` of the exit and, if
 * `set()` was called, writes them back (KVM_SET_REGS) before the next KVM_RUN; an exit that never
 * asks costs nothing. RIP is left alone: on the next KVM_RUN, KVM completes the `in`/`out` at
 * that RIP (merging an `in`'s data into the RAX it finds) and moves past it.
 */
export interface IoCpu {
  get(register: IoCpuRegister): bigint;
  set(register: IoCpuRegister, value: bigint): void;
}

/** A port device that needs the vCPU's registers: the dispatcher prefers these methods when it has an IoCpu. */
export interface CpuPioDevice extends PioDevice {
  pioReadCpu(offset: number, size: PioSize, cpu: IoCpu): number;
  pioWriteCpu(offset: number, size: PioSize, value: number, cpu: IoCpu): void;
}

export function isCpuPioDevice(device: PioDevice): device is CpuPioDevice {
  return typeof (device as Partial<CpuPioDevice>).pioReadCpu === 'function';
}

/**
 * A device whose state can be saved and brought back (snapshots): `state()` returns plain,
 * JSON-able data; `restore()` takes what `state()` returned, possibly in another process.
 */
export interface Snapshottable<S> {
  state(): S;
  restore(state: S): void;
}
