/**
 * The ffi-rs backend computes the ioctl numbers and knows the struct layouts itself; the addon
 * gets them from the C compiler. They must agree, number for number. It also reads errno itself
 * (in place, only after a failed call), so its results must be the addon's, errno for errno.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'kvm');
const require = createRequire(import.meta.url);
const addonPath = path.resolve(dist, '..', '..', 'build', 'Release', 'tskvm.node');

describe('the ffi-rs backend agrees with the addon', () => {
  const addon = require(addonPath) as {
    ioctls: Record<string, number>;
    layout: Record<string, number>;
    kickSignal: number;
    madvice: Record<string, number>;
  };
  const { ffiBackend } = require(path.join(dist, 'ffi-backend.cjs')) as { ffiBackend: typeof addon };

  it('on every ioctl request number', () => {
    expect(ffiBackend.ioctls).toEqual(expect.objectContaining(addon.ioctls));
  });

  it('on every struct size and field offset', () => {
    expect(ffiBackend.layout).toEqual(addon.layout);
  });

  it('on the kick signal and the madvise values', () => {
    expect(ffiBackend.kickSignal).toBe(addon.kickSignal);
    expect(ffiBackend.madvice).toEqual(addon.madvice);
  });
});

describe('the ffi-rs backend returns -errno as the addon does', () => {
  type Calls = {
    open(path: string): number;
    close(fd: number): number;
    ioctl(fd: number, request: number, arg?: number): number;
    run(vcpuFd: number): number;
    mmapFd(fd: number, size: number): bigint;
    mmapAnonymous(size: number): bigint;
    munmap(addr: bigint, size: number): number;
    madvise(addr: bigint, size: number, advice: number): number;
    ioctls: Record<string, number>;
  };
  const addon = require(addonPath) as Calls;
  const { ffiBackend } = require(path.join(dist, 'ffi-backend.cjs')) as { ffiBackend: Calls };
  const EBADF = 9;
  const ENOENT = 2;
  const ENOTTY = 25;
  const EINVAL = 22;
  const ENODEV = 19;
  const PAGE = 4096;

  /** Each call on both backends, in turn: a failure after a success and after another errno must not see a stale one. */
  function both<T>(call: (kvm: Calls) => T): { ffi: T; addon: T } {
    return { ffi: call(ffiBackend), addon: call(addon) };
  }

  it('for failing calls, each with its own errno, one after another', () => {
    const runIoctl = ffiBackend.ioctls.KVM_RUN ?? 0;
    const devNull = { ffi: ffiBackend.open('/dev/null'), addon: addon.open('/dev/null') };
    expect(devNull.ffi).toBeGreaterThanOrEqual(0);
    try {
      expect(both((kvm) => kvm.run(-1))).toEqual({ ffi: -EBADF, addon: -EBADF });
      // KVM_RUN on a file that is no vCPU: ENOTTY, not the EBADF just before.
      expect({ ffi: ffiBackend.run(devNull.ffi), addon: addon.run(devNull.addon) }).toEqual({ ffi: -ENOTTY, addon: -ENOTTY });
      expect(both((kvm) => kvm.open('/nonexistent/tskvm-ffi-test'))).toEqual({ ffi: -ENOENT, addon: -ENOENT });
      expect(both((kvm) => kvm.ioctl(-1, runIoctl, 0))).toEqual({ ffi: -EBADF, addon: -EBADF });
      expect(both((kvm) => kvm.mmapFd(-1, PAGE))).toEqual({ ffi: -BigInt(EBADF), addon: -BigInt(EBADF) });
      // An address that is not page-aligned.
      expect(both((kvm) => kvm.madvise(1n, PAGE, 0))).toEqual({ ffi: -EINVAL, addon: -EINVAL });
    } finally {
      expect({ ffi: ffiBackend.close(devNull.ffi), addon: addon.close(devNull.addon) }).toEqual({ ffi: 0, addon: 0 });
    }
  });

  it('and the value itself for calls that succeed right after one that failed', () => {
    expect(ffiBackend.close(-1)).toBe(-EBADF);
    const fd = ffiBackend.open('/dev/null');
    expect(fd).toBeGreaterThanOrEqual(0);
    // /dev/null cannot be mapped shared: ENODEV on both.
    expect(ffiBackend.mmapFd(fd, PAGE)).toBe(-BigInt(ENODEV));
    expect(addon.mmapFd(fd, PAGE)).toBe(-BigInt(ENODEV));
    const mapping = ffiBackend.mmapAnonymous(PAGE);
    expect(mapping).toBeGreaterThan(0n);
    expect(ffiBackend.madvise(mapping, PAGE, 0)).toBe(0);
    expect(ffiBackend.munmap(mapping, PAGE)).toBe(0);
    expect(ffiBackend.close(fd)).toBe(0);
  });
});
