/**
 * `tskvm/kvm`: the low-level layer that docs/tour.md teaches, for driving KVM by hand — Kvm
 * (/dev/kvm) → VmFd → VcpuFd, the kvm_run view and its exits, the structs KVM reads and writes,
 * the constants from the kernel's headers, and KvmError. Only re-exports: the code lives beside it.
 */
export { Kvm, VmFd, VcpuFd, KVM_DEVICE_PATH, kvmDevicePath } from './ioctls.js';
export { KvmError, errnoName, type KvmErrorCode } from './error.js';
export { CAPABILITIES, type CapabilitySpec } from './capabilities.js';
export { backend, native, probeBackends, type Backend, type BackendName, type BackendProbe, type NativeKvm } from './native.js';
export * from './constants.js';
export * from './run.js';
export * from './structs.js';
export * from './x86.js';
export * from './state.js';
