/**
 * Guest RAM: one MAP_SHARED|MAP_ANONYMOUS|MAP_NORESERVE mapping (MAP_PRIVATE for KSM/huge pages), registered as KVM memory slot 0
 * from guest-physical 0. Reserved, not committed: pages cost memory only once touched. Every
 * thread sees it as its own external ArrayBuffer over the same pages; nothing is ever copied.
 */
import { KvmError } from '../kvm/error.js';
import { native } from '../kvm/native.js';
import { PAGE_SIZE } from '../kvm/constants.js';

export { PAGE_SIZE };

/**
 * This thread's views of guest RAM, by address and size, the most recent last. V8 counts every
 * external ArrayBuffer's length as memory it allocated, so a fresh 16 MiB view per VM made it run
 * a garbage collection every few VMs ("external memory pressure") in both threads, though the
 * views own nothing. A new VM's RAM is mapped where the last one's was (munmap, then mmap of the
 * same size), so its view is the cached one: a view is only addresses, and it is read only
 * through a GuestMemory whose mapping is there.
 */
const views = new Map<string, Uint8Array>();
/** Views kept per thread: enough for the VMs a thread sees in turn (more at once miss, as before). */
const MAX_CACHED_VIEWS = 8;

function viewOf(hostAddr: bigint, size: number): Uint8Array {
  const key = `${hostAddr}:${size}`;
  let view = views.get(key);
  if (view) views.delete(key);
  else {
    view = new Uint8Array(native().externalBuffer(hostAddr, size));
    if (views.size >= MAX_CACHED_VIEWS) views.delete(views.keys().next().value!);
  }
  views.set(key, view);
  return view;
}

export class GuestMemory {
  private closed = false;
  private view: Uint8Array | undefined;

  private constructor(
    /** Host virtual address of guest-physical 0. */
    readonly hostAddr: bigint,
    readonly size: number,
    private readonly owner: boolean,
  ) {}

  /**
   * Maps `size` bytes (a whole number of pages) of fresh, zeroed guest RAM: MAP_SHARED, or
   * MAP_PRIVATE with `private` (KSM and transparent huge pages only work on private anonymous
   * memory; threads share either kind, so tskvm works the same).
   */
  static create(size: number, options: { private?: boolean } = {}): GuestMemory {
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0) {
      throw new RangeError(`guest memory size ${size} is not a positive multiple of ${PAGE_SIZE}`);
    }
    const addr = native().mmapAnonymous(size, !options.private);
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
    this.view ??= viewOf(this.hostAddr, this.size);
    return this.view;
  }

  /** MADV_MERGEABLE: let KSM share identical pages of this RAM with other guests'. */
  mergeable(): void {
    this.advise(native().madvice.MADV_MERGEABLE, 'MADV_MERGEABLE');
  }

  /** MADV_HUGEPAGE: ask for transparent huge pages (fewer TLB misses, for guests that touch a lot). */
  hugepages(): void {
    this.advise(native().madvice.MADV_HUGEPAGE, 'MADV_HUGEPAGE');
  }

  /** Commits every page now (QEMU's -mem-prealloc): no page faults later, and a failure now, not mid-run. */
  prefault(): void {
    const populate = native().madvice.MADV_POPULATE_WRITE;
    if (populate !== undefined && native().madvise(this.hostAddr, this.size, populate) === 0) return;
    // Kernels before 5.14: write one byte in every page (a zero, so the contents do not change).
    const bytes = this.bytes;
    for (let at = 0; at < this.size; at += PAGE_SIZE) bytes[at] = bytes[at]!;
  }

  private advise(advice: number, name: string): void {
    const r = native().madvise(this.hostAddr, this.size, advice);
    if (r < 0) throw KvmError.fromErrno(`madvise ${name}`, r, 'the kernel may lack the feature (CONFIG_KSM / CONFIG_TRANSPARENT_HUGEPAGE)');
  }

  /**
   * Unmaps the memory (when this object mapped it). `unmap: false` leaves the mapping to the
   * process's exit (a VM whose destruction waits for it: Vm.close), closed here all the same.
   */
  close({ unmap = true }: { unmap?: boolean } = {}): void {
    if (this.closed) return;
    this.closed = true;
    this.view = undefined;
    if (this.owner && unmap) native().munmap(this.hostAddr, this.size);
  }
}
