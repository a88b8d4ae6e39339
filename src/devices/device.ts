/**
 * The contract between the buses and the devices on them. Devices are pure state machines: they
 * see an offset inside their own range and never do I/O of their own; whatever they need from the
 * host (an output sink, an input source, a way to end the run) is injected when they are built.
 */

/** Width of a port access in bytes, as KVM reports it in kvm_run.io.size. */
export type PioSize = 1 | 2 | 4;

/** A device on the port-I/O bus. `offset` is relative to the base it was registered at. */
export interface PioDevice {
  /** The value the guest reads; only the low `size` bytes are used. */
  pioRead(offset: number, size: PioSize): number;
  pioWrite(offset: number, size: PioSize, value: number): void;
}

/** A device on the MMIO bus. `data` is the access itself (1–8 bytes), little-endian. */
export interface MmioDevice {
  mmioRead(offset: number, data: Uint8Array): void;
  mmioWrite(offset: number, data: Uint8Array): void;
}
