/**
 * tskvm's library API. Most users want runGuest(); Vm and Vcpu are the layer below, for driving
 * KVM by hand; the devices and the bus are exported for writing and testing devices.
 */
export {
  runGuest,
  startGuest,
  type GuestRun,
  DEFAULT_MEMORY,
  type RunGuestOptions,
  type RunResult,
  type RunReason,
  type SerialEndpoint,
  type ModuleSource,
  type TraceOptions,
  type GdbOptions,
} from './run-guest.js';
export { Vm, Vcpu, releaseIdleResources, type VmOptions, type SerialRings, type VcpuRunOptions, type VcpuState } from './vm/vm.js';
export { GuestMemory } from './vm/guest-memory.js';
export { SerialBridge, type SerialInput, type SerialSink } from './vm/serial-bridge.js';
export { COM_PORTS, type ComPortName } from './vm/board.js';
export type { ExitCounts, VcpuOutcome, VcpuRunResult } from './vm/vcpu-loop.js';
export { KvmError, type KvmErrorCode } from './kvm/error.js';
export { UsageError } from './errors.js';
export { LoaderError, loadImage, detectFormat, type FormatChoice, type ImageFormat, type LoadedImage } from './loader/image.js';
export { loadGuest, detectGuestFormat, GUEST_FORMATS, type GuestFormat, type GuestFormatChoice } from './loader/guest.js';
export type { BootState } from './loader/boot-state.js';
export { applyBootState } from './vm/cpu-setup.js';
export { parseSize, parseMemorySize, parseDuration } from './units.js';
export { cpuMode, type CpuMode, type KvmRegs, type KvmSregs, type KvmSegment } from './kvm/structs.js';
export { Bus, BusError, type BusSlot } from './devices/bus.js';
export type { PioDevice, MmioDevice, PioSize } from './devices/device.js';
export { Serial16550, type SerialHost } from './devices/serial16550.js';
export { FwCfg, type FwCfgConfig } from './devices/fw-cfg.js';
export { formatStatsTable, type ExitStatsJson } from './debug/stats.js';
