/**
 * The native module's interface, typed. Every call returns a value or -errno (a negative number,
 * or a negative bigint for mappings); turning that into a KvmError is the caller's job.
 */
import { createRequire } from 'node:module';
import { existsSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import path from 'node:path';

export interface NativeIoctls {
  readonly KVM_GET_API_VERSION: number;
  readonly KVM_CHECK_EXTENSION: number;
  readonly KVM_CREATE_VM: number;
  readonly KVM_GET_VCPU_MMAP_SIZE: number;
  readonly KVM_SET_TSS_ADDR: number;
  readonly KVM_SET_IDENTITY_MAP_ADDR: number;
  readonly KVM_CREATE_VCPU: number;
  readonly KVM_GET_REGS: number;
  readonly KVM_SET_REGS: number;
  readonly KVM_GET_SREGS: number;
  readonly KVM_SET_SREGS: number;
  readonly KVM_CREATE_IRQCHIP: number;
  readonly KVM_CREATE_PIT2: number;
  readonly KVM_IRQ_LINE: number;
  readonly KVM_GET_SUPPORTED_CPUID: number;
  readonly KVM_SET_CPUID2: number;
  readonly KVM_GET_MSRS: number;
  readonly KVM_SET_MSRS: number;
  readonly KVM_GET_MSR_INDEX_LIST: number;
  readonly KVM_GET_MP_STATE: number;
  readonly KVM_SET_MP_STATE: number;
  readonly KVM_GET_IRQCHIP: number;
  readonly KVM_SET_GSI_ROUTING: number;
  readonly KVM_SET_GUEST_DEBUG: number;
  readonly KVM_TRANSLATE: number;
  // Snapshots: a vCPU's whole state, and the VM's interrupt controllers, PIT and clock.
  readonly KVM_GET_CPUID2: number;
  readonly KVM_GET_FPU: number;
  readonly KVM_SET_FPU: number;
  readonly KVM_GET_XSAVE: number;
  readonly KVM_GET_XSAVE2: number;
  readonly KVM_SET_XSAVE: number;
  readonly KVM_GET_XCRS: number;
  readonly KVM_SET_XCRS: number;
  readonly KVM_GET_LAPIC: number;
  readonly KVM_SET_LAPIC: number;
  readonly KVM_GET_VCPU_EVENTS: number;
  readonly KVM_SET_VCPU_EVENTS: number;
  readonly KVM_GET_DEBUGREGS: number;
  readonly KVM_SET_DEBUGREGS: number;
  readonly KVM_GET_TSC_KHZ: number;
  readonly KVM_SET_TSC_KHZ: number;
  readonly KVM_SET_IRQCHIP: number;
  readonly KVM_GET_PIT2: number;
  readonly KVM_SET_PIT2: number;
  readonly KVM_GET_CLOCK: number;
  readonly KVM_SET_CLOCK: number;
}

/** Struct sizes and field offsets from the kernel headers the addon was built against. */
export interface NativeLayout {
  readonly [field: string]: number;
}

export interface NativeKvm {
  open(path: string): number;
  close(fd: number): number;
  ioctl(fd: number, request: number, arg?: number): number;
  ioctlBuffer(fd: number, request: number, bytes: Uint8Array): number;
  setUserMemoryRegion(vmFd: number, slot: number, flags: number, guestPhysAddr: number, size: number, userAddr: bigint): number;
  run(vcpuFd: number): number;
  /**
   * KVM_RUN, again and again while the vCPU exits for a port that `unassigned` marks (one bit per
   * port, PORT_MAP_BYTES): writes dropped, reads all ones, without a return to JavaScript. Returns
   * as run() does, for the first other exit; handled[0] grows by the exits it took itself. The
   * addon has it; the ffi-rs backend runs every exit through JavaScript.
   */
  runPastUnassigned?(vcpuFd: number, kvmRun: ArrayBuffer, unassigned: Uint8Array, handled: Float64Array): number;
  /** MAP_SHARED (default) or MAP_PRIVATE anonymous memory, MAP_NORESERVE either way. */
  mmapAnonymous(size: number, shared?: boolean): bigint;
  mmapFd(fd: number, size: number): bigint;
  /**
   * Maps `size` bytes of file `fd` from `offset` over `addr` (MAP_PRIVATE|MAP_FIXED, read-write):
   * the snapshot file's pages become guest RAM, copy-on-write. 0 or -errno.
   */
  mmapFileFixed(addr: bigint, size: number, fd: number, offset: number): number;
  /** mincore(2) into `vec` (one byte per page, bit 0: resident). 0 or -errno. */
  mincore(addr: bigint, size: number, vec: Uint8Array): number;
  munmap(addr: bigint, size: number): number;
  madvise(addr: bigint, size: number, advice: number): number;
  externalBuffer(addr: bigint, size: number): ArrayBuffer;
  threadSelf(): bigint;
  /**
   * Whether this is Node's main thread (the process's first: its tid is the pid), known without
   * loading node:worker_threads (~3 ms at first use here). The addon has it; elsewhere ask worker_threads.
   */
  isMainThread?(): boolean;
  /** isatty(3), known without node:tty (which loads node:net: ~5 ms of a launch). The addon has it. */
  isatty?(fd: number): boolean;
  /**
   * Whether this thread's event loop has work for a turn now: a timer due, a handle closing, or
   * an fd ready (I/O, a signal, a message, V8's tasks). Node's immediates it cannot see (see
   * src/vcpu/caller-thread.ts). The addon has it; without it an exit loop on the caller's thread
   * gives the event loop a turn after every slice.
   */
  loopHasWork?(): boolean;
  kick(runAddr: bigint, thread: bigint): number;
  /**
   * A slice timer for an exit loop on a thread with an event loop (src/kvm/slice-timer.ts): a
   * POSIX timer that kicks the calling thread and sets immediate_exit in the kvm_run at
   * `runAddr`. The timer id, or -errno. The addon has them; the ffi-rs backend does not (its
   * signal handler cannot set immediate_exit), so its vCPUs always run in worker threads.
   */
  sliceTimerCreate?(runAddr: bigint): number;
  /** Arms the timer: first tick after `firstNs`, then every `periodNs` (0, 0 disarms). 0 or -errno. */
  sliceTimerSet?(timer: number, firstNs: number, periodNs: number): number;
  sliceTimerDelete?(timer: number): number;
  /**
   * Hands a reference to each of `fds` (1 to 64) to a child process that closes them only when
   * this process has exited (native/teardown.c), so that the kernel destroys a VM after this
   * process ends instead of during its exit. The child's pid, or -errno. The addon has it.
   */
  destroyAfterExit?(fds: readonly number[]): number;
  readonly ioctls: NativeIoctls;
  readonly layout: NativeLayout;
  readonly kickSignal: number;
  /** madvise(2) advice values from <sys/mman.h>; MADV_POPULATE_WRITE only where the headers have it. */
  readonly madvice: { readonly MADV_MERGEABLE: number; readonly MADV_HUGEPAGE: number; readonly MADV_POPULATE_WRITE?: number };
}

// A URL's path, decoded, is what fileURLToPath gives for this module's own file URL; it spares a
// launch node:url's conversions (~0.2 ms cold), which nothing else in `tskvm run` needs.
const packageRoot = path.resolve(decodeURIComponent(new URL('../..', import.meta.url).pathname));
/** The addon node-gyp builds; TSKVM_ADDON_PATH points elsewhere (the tests use it to play "no addon"). */
export const addonPath = process.env.TSKVM_ADDON_PATH || path.join(packageRoot, 'build', 'Release', 'tskvm.node');

export type BackendName = 'addon' | 'ffi';

export interface Backend {
  name: BackendName;
  /** Why this one: the default, TSKVM_BACKEND, or the addon's failure. */
  why: string;
  native: NativeKvm;
}

let loaded: Backend | undefined;

/** The backend's calls (loaded once per thread: both backends work in worker threads). */
export function native(): NativeKvm {
  return backend().native;
}

/**
 * The addon (fastest) unless TSKVM_BACKEND=ffi; when the addon is missing or fails to load, the
 * ffi-rs backend, with a one-line notice on stderr (from the main thread only, once).
 */
export function backend(): Backend {
  loaded ??= selectBackend();
  return loaded;
}

/** One line on stderr, written directly: no stream made for it, and a broken stderr only loses the line. */
function notice(line: string): void {
  try {
    writeSync(STDERR_FD, line);
  } catch {
    // EPIPE, EAGAIN: the notice is all that is lost
  }
}

const STDERR_FD = 2;

function selectBackend(): Backend {
  const wanted = process.env.TSKVM_BACKEND;
  if (wanted !== undefined && wanted !== '' && wanted !== 'addon' && wanted !== 'ffi') {
    throw Object.assign(new Error(`TSKVM_BACKEND='${wanted}' is not a backend: use addon or ffi`), { code: 'EUSAGE' });
  }
  if (wanted === 'ffi') return { name: 'ffi', why: 'TSKVM_BACKEND=ffi', native: loadFfi() };
  try {
    return { name: 'addon', why: wanted === 'addon' ? 'TSKVM_BACKEND=addon' : 'the default', native: loadAddon() };
  } catch (err) {
    if (wanted === 'addon') throw err;
    const why = `the native addon is not usable (${(err as Error).message})`;
    if (isMainThread) notice(`tskvm: ${why}; using the ffi-rs backend (slower exits; \`npm run build\` builds the addon)\n`);
    return { name: 'ffi', why, native: loadFfi() };
  }
}

export interface BackendProbe {
  loaded: boolean;
  error: { code: string; message: string } | null;
}

/** Whether each backend loads in this process (for `tskvm doctor`), whichever is in use. */
export function probeBackends(): Record<BackendName, BackendProbe> {
  const probe = (load: () => NativeKvm): BackendProbe => {
    try {
      load();
      return { loaded: true, error: null };
    } catch (err) {
      const e = err as Error & { code?: string };
      return { loaded: false, error: { code: e.code ?? 'ELOAD', message: e.message } };
    }
  };
  return { addon: probe(loadAddon), ffi: probe(loadFfi) };
}

/** The addon the bundle loader (src/cli/code-cache.cts) already loaded on this thread, under its ADDON_HANDOFF. */
const ADDON_HANDOFF = Symbol.for('tskvm.addon');

function loadAddon(): NativeKvm {
  const file = path.resolve(addonPath);
  const handed = (process as unknown as Record<symbol, { file: string; exports: unknown } | undefined>)[ADDON_HANDOFF];
  if (handed?.file === file) return handed.exports as NativeKvm;
  if (!existsSync(addonPath)) {
    throw Object.assign(new Error(`${addonPath} is missing; build it with \`npm run build\` (needs python3, make and g++)`), {
      code: 'ENOADDON',
    });
  }
  // What require() does for a .node file, without its module resolution (stat, realpath) and the
  // module object it keeps. Node loads the library once per process; each thread gets its exports.
  const addon = { exports: {} };
  process.dlopen(addon, file);
  return addon.exports as NativeKvm;
}

function loadFfi(): NativeKvm {
  // Beside this file in dist/; from the TypeScript sources (the unit tests), the compiled one in dist/.
  const local = fileURLToPath(new URL('./ffi-backend.cjs', import.meta.url));
  const file = existsSync(local) ? local : path.join(packageRoot, 'dist', 'kvm', 'ffi-backend.cjs');
  return (createRequire(import.meta.url)(file) as { ffiBackend: NativeKvm }).ffiBackend;
}
