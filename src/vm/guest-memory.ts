/**
 * Guest RAM: one MAP_SHARED|MAP_ANONYMOUS|MAP_NORESERVE mapping, registered as KVM memory slot 0
 * from guest-physical 0. Reserved, not committed: pages cost memory only once touched. Every
 * thread sees it as its own external ArrayBuffer over the same pages; nothing is ever copied.
 */
import { KvmError } from '../kvm/error.js';
import { native } from '../kvm/native.js';

export const PAGE_SIZE = 4096;

export class GuestMemory {
  private closed = false;
  private view: Uint8Array | undefined;

  private constructor(
    /** Host virtual address of guest-physical 0. */
    readonly hostAddr: bigint,
    readonly size: number,
    private readonly owner: boolean,
  ) {}

  /** Maps `size` bytes (a whole number of pages) of fresh, zeroed guest RAM. */
  static create(size: number): GuestMemory {
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0) {
      throw new RangeError(`guest memory size ${size} is not a positive multiple of ${PAGE_SIZE}`);
    }
    const addr = native().mmapAnonymous(size);
    if (addr < 0n) throw KvmError.fromErrno('mmap guest memory', Number(addr), `${size} bytes`);
    return new GuestMemory(addr, size, true);
  }

  /** This thread's view of memory mapped by another thread (which stays the owner). */
  static attach(hostAddr: bigint, size: number): GuestMemory {
    return new GuestMemory(hostAddr, size, false);
  }

  /** Guest-physical bytes 0..size-1, as this thread's Uint8Array over the mapping. */
  get bytes(): Uint8Array {
    if (this.closed) throw new Error('guest memory is closed');
    this.view ??= new Uint8Array(native().externalBuffer(this.hostAddr, this.size));
    return this.view;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.view = undefined;
    if (this.owner) native().munmap(this.hostAddr, this.size);
  }
}
