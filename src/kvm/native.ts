/**
 * The native module's interface, typed. Every call returns a value or -errno (a negative number,
 * or a negative bigint for mappings); turning that into a KvmError is the caller's job.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
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
  /** MAP_SHARED (default) or MAP_PRIVATE anonymous memory, MAP_NORESERVE either way. */
  mmapAnonymous(size: number, shared?: boolean): bigint;
  mmapFd(fd: number, size: number): bigint;
  munmap(addr: bigint, size: number): number;
  madvise(addr: bigint, size: number, advice: number): number;
  externalBuffer(addr: bigint, size: number): ArrayBuffer;
  threadSelf(): bigint;
  kick(runAddr: bigint, thread: bigint): number;
  readonly ioctls: NativeIoctls;
  readonly layout: NativeLayout;
  readonly kickSignal: number;
  /** madvise(2) advice values from <sys/mman.h>; MADV_POPULATE_WRITE only where the headers have it. */
  readonly madvice: { readonly MADV_MERGEABLE: number; readonly MADV_HUGEPAGE: number; readonly MADV_POPULATE_WRITE?: number };
}

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const addonPath = path.join(packageRoot, 'build', 'Release', 'tskvm.node');

let loaded: NativeKvm | undefined;

/** Loads the addon once per thread (it is context-aware, so workers load it too). */
export function native(): NativeKvm {
  if (loaded === undefined) {
    if (!existsSync(addonPath)) {
      throw Object.assign(
        new Error(`the tskvm native addon is not built (${addonPath} is missing); run \`npm run build\` (needs python3, make and g++)`),
        { code: 'ENOADDON' },
      );
    }
    loaded = createRequire(import.meta.url)(addonPath) as NativeKvm;
  }
  return loaded;
}
