#!/usr/bin/env node
// What one call costs through each backend, without KVM_RUN's own cost: the NativeKvm ioctl of the
// addon against the ffi-rs backend's (dist/kvm/ffi-backend.cjs: a prepared params object, ffi-rs's
// native load, no `errno: true`), ffi-rs's define() with `errno: true` (what that backend used
// before), and an empty ffi-rs call (getpid), the floor of any call through ffi-rs. The ffi-rs
// backend's exit costs the addon's plus the difference of the first two. Rounds are interleaved,
// as the host is shared; min and median in µs. `node bench/ffi-call-cost.mjs [rounds]`
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from './stats.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));
const ffi = require('ffi-rs');
const addon = require(path.join(root, 'build', 'Release', 'tskvm.node'));
const { ffiBackend } = require(path.join(root, 'dist', 'kvm', 'ffi-backend.cjs'));

const rounds = Number(process.argv[2] ?? 11);
const CALLS = 20_000;
const { DataType } = ffi;
const I32 = DataType.I32;
const U64 = DataType.U64;
ffi.open({ library: 'libc', path: 'libc.so.6' });

const kvm = addon.open('/dev/kvm');
if (kvm < 0) throw new Error(`/dev/kvm: errno ${-kvm}`);
const getApiVersion = addon.ioctls.KVM_GET_API_VERSION;

const defined = ffi.define({
  ioctl: { library: 'libc', retType: I32, paramsType: [I32, U64, U64], errno: true },
  getpid: { library: 'libc', retType: I32, paramsType: [], errno: true },
});
const prepared = (funcName, paramsType, paramsValue) => ({
  library: 'libc',
  funcName,
  retType: I32,
  paramsType,
  paramsValue,
  freeResultMemory: false,
});
const getpidCall = prepared('getpid', [], []);

const forms = {
  'addon: ioctl(KVM_GET_API_VERSION)': () => addon.ioctl(kvm, getApiVersion, 0),
  'ffi-rs backend: the same': () => ffiBackend.ioctl(kvm, getApiVersion, 0),
  'ffi-rs define + errno: the same': () => defined.ioctl([kvm, getApiVersion, 0]),
  'ffi-rs load, prepared: getpid()': () => ffi.load(getpidCall),
  'ffi-rs define + errno: getpid()': () => defined.getpid([]),
};
for (const call of Object.values(forms)) for (let i = 0; i < CALLS; i++) call(); // JIT warm-up

const us = Object.fromEntries(Object.keys(forms).map((name) => [name, []]));
for (let round = 0; round < rounds; round++) {
  for (const [name, call] of Object.entries(forms)) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < CALLS; i++) call();
    us[name].push(Number(process.hrtime.bigint() - start) / CALLS / 1000);
  }
}
addon.close(kvm);

console.log(`One call, µs (min / median of ${rounds} interleaved rounds of ${CALLS} calls)`);
for (const [name, xs] of Object.entries(us)) {
  console.log(
    `  ${name.padEnd(40)} ${Math.min(...xs)
      .toFixed(2)
      .padStart(6)} / ${median(xs).toFixed(2).padStart(6)}`,
  );
}
