/**
 * tskvm's library API. Most users want runGuest(); Vm and Vcpu are the layer below, for driving
 * KVM by hand.
 */
export { runGuest, DEFAULT_MEMORY, type RunGuestOptions, type RunResult, type RunReason } from './run-guest.js';
export { Vm, Vcpu, type VmOptions, type SerialRings } from './vm/vm.js';
export { GuestMemory } from './vm/guest-memory.js';
export { SerialBridge, type SerialInput, type SerialSink } from './vm/serial-bridge.js';
export type { ExitCounts, VcpuOutcome, VcpuRunResult } from './vm/vcpu-loop.js';
export { KvmError, type KvmErrorCode } from './kvm/error.js';
export { UsageError } from './errors.js';
export { LoaderError, loadImage, detectFormat, type FormatChoice, type ImageFormat, type LoadedImage } from './loader/image.js';
export { parseSize, parseMemorySize, parseDuration } from './units.js';
export type { KvmRegs, KvmSregs, KvmSegment } from './kvm/structs.js';
