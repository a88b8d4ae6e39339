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
} from './machine/run.js';
export { Vm, releaseIdleResources, type VmOptions } from './machine/vm.js';
export { Vcpu, type VcpuRunOptions, type VcpuState } from './vcpu/vcpu.js';
export type { SerialRings } from './io/byte-ring.js';
export { GuestMemory } from './memory/guest-memory.js';
export { SerialBridge, type SerialInput, type SerialSink } from './io/serial-bridge.js';
export { SerialConsole, ExpectTimeoutError, MAX_CONSOLE_OUTPUT, DEFAULT_EXPECT_TIMEOUT_MS, type ExpectMatch } from './io/serial-console.js';
export { COM_PORTS, type ComPortName } from './board/pc-board.js';
export type { ExitCounts, VcpuOutcome, VcpuRunResult } from './vcpu/exit-loop.js';
export { KvmError, type KvmErrorCode } from './kvm/error.js';
export { UsageError } from './errors.js';
export { LoaderError, loadImage, detectFormat, type FormatChoice, type ImageFormat, type LoadedImage } from './loader/image.js';
export { loadGuest, detectGuestFormat, GUEST_FORMATS, type GuestFormat, type GuestFormatChoice } from './loader/guest.js';
export type { BootState } from './arch/x86/boot-state.js';
export { applyBootState } from './arch/x86/boot-cpu.js';
export { parseSize, parseMemorySize, parseDuration } from './units.js';
export { cpuMode, type CpuMode, type KvmRegs, type KvmSregs, type KvmSegment } from './kvm/structs.js';
export { Bus, BusError, type BusSlot } from './devices/bus.js';
export type { PioDevice, MmioDevice, PioSize } from './devices/device.js';
export { Serial16550, type SerialHost } from './devices/serial16550.js';
export { FwCfg, type FwCfgConfig } from './devices/fw-cfg.js';
export { formatStatsTable, type ExitStatsJson } from './debug/stats.js';
export type { SnapshotInfo, SnapshotOptions } from './snapshot/capture.js';
export type { SaveOptions, SnapshotRunOptions } from './snapshot/options.js';
export type { Snapshottable } from './devices/device.js';
export * from './domains/index.js';
export { screenText, screenAnsi, captureScreen, type ScreenCapture } from './bios/screen.js';
export type { BiosOptions } from './bios/options.js';
