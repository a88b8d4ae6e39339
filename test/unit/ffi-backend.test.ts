/**
 * The ffi-rs backend computes the ioctl numbers and knows the struct layouts itself; the addon
 * gets them from the C compiler. They must agree, number for number.
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
