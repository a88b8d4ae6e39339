/**
 * A zero-copy view of a vCPU's struct kvm_run (the page KVM_RUN fills in on every exit), and the
 * decoding of an exit into a discriminated union, as rust-vmm's VcpuExit does.
 */
import {
  KVM_EXIT_DEBUG,
  KVM_EXIT_FAIL_ENTRY,
  KVM_EXIT_HLT,
  KVM_EXIT_INTERNAL_ERROR,
  KVM_EXIT_INTR,
  KVM_EXIT_IO,
  KVM_EXIT_IO_OUT,
  KVM_EXIT_MMIO,
  KVM_EXIT_SHUTDOWN,
} from './constants.js';

// Offsets in struct kvm_run (x86-64); checked against the addon's offsetof() in the unit tests.
export const KVM_RUN_IMMEDIATE_EXIT = 1;
export const KVM_RUN_EXIT_REASON = 8;
/** The exit-specific union starts here. */
export const KVM_RUN_EXIT_UNION = 32;
export const KVM_RUN_IO_DIRECTION = 32;
export const KVM_RUN_IO_SIZE = 33;
export const KVM_RUN_IO_PORT = 34;
export const KVM_RUN_IO_COUNT = 36;
export const KVM_RUN_IO_DATA_OFFSET = 40;
export const KVM_RUN_MMIO_PHYS_ADDR = 32;
export const KVM_RUN_MMIO_DATA = 40;
export const KVM_RUN_MMIO_LEN = 48;
export const KVM_RUN_MMIO_IS_WRITE = 52;
export const KVM_RUN_FAIL_ENTRY_REASON = 32;
export const KVM_RUN_FAIL_ENTRY_CPU = 40;
export const KVM_RUN_INTERNAL_SUBERROR = 32;
export const KVM_RUN_INTERNAL_NDATA = 36;
export const KVM_RUN_INTERNAL_DATA = 40;
export const KVM_RUN_HW_EXIT_REASON = 32;
export const KVM_RUN_DEBUG_EXCEPTION = 32;
export const KVM_RUN_DEBUG_PC = 40;
export const KVM_RUN_DEBUG_DR6 = 48;
export const KVM_RUN_DEBUG_DR7 = 56;
/** kvm_run.internal.data holds at most 16 u64s. */
const KVM_INTERNAL_DATA_MAX = 16;
/** kvm_run.mmio.data is 8 bytes. */
export const KVM_MMIO_DATA_MAX = 8;

export type IoDirection = 'in' | 'out';

export type VcpuExit =
  /**
   * A port access: `count` elements of `size` bytes (count > 1 is string I/O). `data` holds them
   * (size × count bytes, little-endian): what the guest wrote, or where an `in` puts its answer.
   * From KVM_RUN it is a view of the kvm_run page, as kvm-ioctls' `IoOut(port, &[u8])` is, and
   * the object itself is KvmRun's own, refilled by the next exit: an io exit allocates nothing.
   */
  | {
      readonly kind: 'io';
      readonly direction: IoDirection;
      readonly size: 1 | 2 | 4;
      readonly port: number;
      readonly count: number;
      readonly data: Uint8Array;
    }
  /** A guest-physical access outside every memory slot; `data` is the access's `len` bytes. */
  | { readonly kind: 'mmio'; readonly physAddr: number; readonly len: number; readonly isWrite: boolean; readonly data: Uint8Array }
  | { readonly kind: 'hlt' }
  /** A debug exception under KVM_SET_GUEST_DEBUG: #DB (1) for single-step and debug registers, #BP (3). */
  | { readonly kind: 'debug'; readonly exception: number; readonly pc: bigint; readonly dr6: bigint; readonly dr7: bigint }
  /** Triple fault: the CPU shut down. */
  | { readonly kind: 'shutdown' }
  /** KVM_RUN returned because a signal arrived (the vCPU was kicked). */
  | { readonly kind: 'intr' }
  | { readonly kind: 'internal-error'; readonly suberror: number; readonly data: readonly bigint[] }
  | { readonly kind: 'fail-entry'; readonly hardwareEntryFailureReason: bigint; readonly cpu: number }
  | { readonly kind: 'unknown'; readonly exitReason: number; readonly hardwareExitReason: bigint };

// The exits without fields, shared.
const HLT_EXIT: VcpuExit = Object.freeze({ kind: 'hlt' });
const SHUTDOWN_EXIT: VcpuExit = Object.freeze({ kind: 'shutdown' });
const INTR_EXIT: VcpuExit = Object.freeze({ kind: 'intr' });

/** The io exit as KvmRun fills it in. */
type IoExit = { -readonly [K in keyof Extract<VcpuExit, { kind: 'io' }>]: Extract<VcpuExit, { kind: 'io' }>[K] };

export class KvmRun {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  /** The one io exit object, refilled on every io exit (the exit path's common case allocates nothing). */
  private readonly io: IoExit = { kind: 'io', direction: 'out', size: 1, port: 0, count: 0, data: new Uint8Array(0) };

  constructor(buffer: ArrayBuffer) {
    this.bytes = new Uint8Array(buffer);
    this.view = new DataView(buffer);
  }

  get exitReason(): number {
    return this.view.getUint32(KVM_RUN_EXIT_REASON, true);
  }

  get immediateExit(): boolean {
    return this.view.getUint8(KVM_RUN_IMMEDIATE_EXIT) !== 0;
  }

  set immediateExit(on: boolean) {
    this.view.setUint8(KVM_RUN_IMMEDIATE_EXIT, on ? 1 : 0);
  }

  /**
   * The I/O data view: KVM puts it at the same offset for every exit of one vCPU, so the view of
   * the last (offset, length) is kept instead of making one per exit. A bad offset from the
   * kernel is clamped to the page, never read past it.
   */
  private ioData(offset: number, length: number): Uint8Array {
    if (offset !== this.ioOffset || length !== this.ioView.length) {
      const start = Math.min(offset, this.bytes.length);
      this.ioOffset = offset;
      this.ioView = this.bytes.subarray(start, Math.min(start + length, this.bytes.length));
    }
    return this.ioView;
  }

  private ioOffset = -1;
  private ioView: Uint8Array = new Uint8Array(0);

  /** Decodes the exit that the last KVM_RUN reported. */
  exit(): VcpuExit {
    const v = this.view;
    const reason = this.exitReason;
    switch (reason) {
      case KVM_EXIT_IO: {
        const io = this.io;
        const size = v.getUint8(KVM_RUN_IO_SIZE) as 1 | 2 | 4;
        const count = v.getUint32(KVM_RUN_IO_COUNT, true);
        io.direction = v.getUint8(KVM_RUN_IO_DIRECTION) === KVM_EXIT_IO_OUT ? 'out' : 'in';
        io.size = size;
        io.port = v.getUint16(KVM_RUN_IO_PORT, true);
        io.count = count;
        // data_offset is a u64 the kernel sets to a small page offset: its low half is all of it
        // (getBigUint64 would allocate a BigInt per exit). A high half that is not 0 is clamped as out of the page.
        const offsetHigh = v.getUint32(KVM_RUN_IO_DATA_OFFSET + 4, true);
        io.data = this.ioData(offsetHigh === 0 ? v.getUint32(KVM_RUN_IO_DATA_OFFSET, true) : this.bytes.length, size * count);
        return io;
      }
      case KVM_EXIT_MMIO: {
        const len = Math.min(v.getUint32(KVM_RUN_MMIO_LEN, true), KVM_MMIO_DATA_MAX);
        return {
          kind: 'mmio',
          physAddr: Number(v.getBigUint64(KVM_RUN_MMIO_PHYS_ADDR, true)),
          len,
          isWrite: v.getUint8(KVM_RUN_MMIO_IS_WRITE) !== 0,
          data: this.bytes.subarray(KVM_RUN_MMIO_DATA, KVM_RUN_MMIO_DATA + len),
        };
      }
      case KVM_EXIT_HLT:
        return HLT_EXIT;
      case KVM_EXIT_DEBUG:
        return {
          kind: 'debug',
          exception: v.getUint32(KVM_RUN_DEBUG_EXCEPTION, true),
          pc: v.getBigUint64(KVM_RUN_DEBUG_PC, true),
          dr6: v.getBigUint64(KVM_RUN_DEBUG_DR6, true),
          dr7: v.getBigUint64(KVM_RUN_DEBUG_DR7, true),
        };
      case KVM_EXIT_SHUTDOWN:
        return SHUTDOWN_EXIT;
      case KVM_EXIT_INTR:
        return INTR_EXIT;
      case KVM_EXIT_INTERNAL_ERROR: {
        const ndata = Math.min(v.getUint32(KVM_RUN_INTERNAL_NDATA, true), KVM_INTERNAL_DATA_MAX);
        const data: bigint[] = [];
        for (let i = 0; i < ndata; i++) data.push(v.getBigUint64(KVM_RUN_INTERNAL_DATA + i * 8, true));
        return { kind: 'internal-error', suberror: v.getUint32(KVM_RUN_INTERNAL_SUBERROR, true), data };
      }
      case KVM_EXIT_FAIL_ENTRY:
        return {
          kind: 'fail-entry',
          hardwareEntryFailureReason: v.getBigUint64(KVM_RUN_FAIL_ENTRY_REASON, true),
          cpu: v.getUint32(KVM_RUN_FAIL_ENTRY_CPU, true),
        };
      default:
        return { kind: 'unknown', exitReason: reason, hardwareExitReason: v.getBigUint64(KVM_RUN_HW_EXIT_REASON, true) };
    }
  }
}
