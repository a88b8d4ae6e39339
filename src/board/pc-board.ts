/**
 * The board: which device sits at which address and which IRQ line it drives, as on a PC. Built
 * inside the vCPU's thread so every exit is handled there without crossing threads; the host
 * sides of the devices (serial rings, the end-of-run callbacks, the IRQ lines) are injected.
 */
import { Bus, PIO_ADDRESS_SPACE_SIZE, type MmioBus, type PioBus } from '../devices/bus.js';
import { DEBUG_EXIT_IOSIZE, DEBUG_EXIT_PORT, DebugExit } from '../devices/debug-exit.js';
import type { MachineStop, MmioDevice, PioDevice } from '../devices/device.js';
import { handleIo, handleMmio, unassignedPortMap, type ExitDevices } from '../devices/dispatch.js';
import { FW_CFG_IO_BASE, FW_CFG_IO_SIZE, FwCfg, type FwCfgConfig } from '../devices/fw-cfg.js';
import { I8042, I8042_DATA_PORT, I8042_PORT_COUNT } from '../devices/i8042.js';
import { Serial16550, UART_REGISTER_COUNT, type SerialHost } from '../devices/serial16550.js';
import { VmFd } from '../kvm/ioctls.js';
import { KVM_PIT_FLAGS_HPET_LEGACY, KVM_STATE_LAYOUT } from '../kvm/state.js';
import { VMPORT_PORT, VMPORT_SIZE, VmPort } from '../devices/vmport.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { ByteRing } from '../io/byte-ring.js';
import { SharedIrqLines, type IrqLineSetter } from './irq-lines.js';
import { restoreBoardState, type BoardState } from './board-state.js';
import { loadedBios } from '../bios/lazy.js';
import { connectPcChipset, type ConnectedPcChipset } from './chipset.js';
import type { BiosBoardSpec } from '../bios/spec.js';

/** The four PC serial ports: I/O base and ISA IRQ (COM3/COM4 share COM1/COM2's lines). */
export const COM_PORTS = [
  { name: 'COM1', base: 0x3f8, irq: 4 },
  { name: 'COM2', base: 0x2f8, irq: 3 },
  { name: 'COM3', base: 0x3e8, irq: 4 },
  { name: 'COM4', base: 0x2e8, irq: 3 },
] as const;
export type ComPortName = (typeof COM_PORTS)[number]['name'];
export const COM_PORT_NAMES: readonly ComPortName[] = COM_PORTS.map((p) => p.name);

export interface Board {
  /** Guest RAM as this thread sees it (empty when the board was built without it). */
  readonly memory: Uint8Array;
  readonly pio: PioBus;
  readonly mmio: MmioBus;
  readonly serial: readonly Serial16550[];
  /** Set by a device that ends the run; the exit loop checks it after every exit. */
  stop: MachineStop | undefined;
  /** More devices that take host input when told some arrived (the BIOS's keyboard). */
  readonly inputPolls: (() => void)[];
  /** PCI, ACPI PM, HPET, RTC...: the timers' deadlines and the sleep states come from here. */
  chipset?: ConnectedPcChipset;
}

/** A serial port's host side: TX into the ring the main thread drains, RX from the ring it fills. */
export function ringSerialHost(tx: ByteRing, rx: ByteRing): SerialHost {
  return {
    transmit(byte) {
      // The device holds bytes back (THRE clear) once the backlog reaches its limit, and the ring
      // is sized above that limit, so a push never finds it full.
      tx.push(byte);
    },
    txBacklog: () => tx.used(),
    receive: () => rx.shift(),
  };
}

export interface PcBoardHost {
  /** Guest RAM (guest-physical 0 up), for devices that read or write guest memory. */
  memory?: Uint8Array;
  /** One host side per COM port, COM1 first (fewer: the rest are connected to nothing). */
  serial: readonly SerialHost[];
  /** Absent without an in-kernel irqchip: devices then compute interrupts nobody receives. */
  irqLine?: IrqLineSetter;
  /** What fw_cfg (0x510/0x511) reports; without it the ports are unassigned. */
  firmware?: FwCfgConfig;
  /** tskvm's BIOS (VGA, CMOS clock, disks, keyboard, the trap port) when the guest boots through it. */
  bios?: BiosBoardSpec;
  /** A debug-exit value the host takes for itself (a snapshot trigger): returns true, and the run goes on. */
  debugExit?: (value: number) => boolean;
  /** HPET legacy replacement switched: the in-kernel 8254 must stop (or resume) driving IRQ0. */
  pitLegacy?: (hpetOwnsIrq0: boolean) => void;
}

/** A serial port plugged into nothing: output vanishes, no input ever arrives. */
export const UNCONNECTED_SERIAL: SerialHost = { transmit: () => {}, txBacklog: () => 0, receive: () => -1 };

/** What a thread needs to build the board itself: plain data, postMessage-able. */
export interface BoardSpec {
  vmFd: number;
  /** Guest RAM, as the main thread mapped it (devices that read or write guest memory see it). */
  memoryAddr: bigint;
  memorySize: number;
  /** The VM has an in-kernel irqchip: devices drive KVM_IRQ_LINE. */
  irqchip: boolean;
  /** Per COM port, COM1 first: its TX and RX rings' buffers (null: connected to nothing). */
  serial: ({ tx: SharedArrayBuffer; rx: SharedArrayBuffer } | null)[];
  /** What fw_cfg tells the guest; no fw_cfg device without it. */
  firmware: FwCfgConfig | undefined;
  /** The BIOS's devices, for a guest booting through tskvm's BIOS. */
  bios?: BiosBoardSpec;
  /** Snapshots: device state to restore once the board is built, and a debug-exit value that asks for a snapshot. */
  snapshot?: BoardSnapshotSpec;
}

export interface BoardSnapshotSpec {
  /** Restored into the new board's devices (saveBoardState's output, from a snapshot file). */
  restore?: BoardState;
  /** A write of `value` to the debug-exit port sets word 0 of `flag` and notifies it instead of ending the run. */
  trigger?: { value: number; flag: SharedArrayBuffer };
}

/** The PC board, in the calling thread, wired to the rings and the VM that `spec` names. */
export function createPcBoardFromSpec(spec: BoardSpec): Board {
  const vm = VmFd.attach(spec.vmFd);
  const trigger = spec.snapshot?.trigger;
  const flag = trigger ? new Int32Array(trigger.flag) : undefined;
  const board = createPcBoard({
    memory: GuestMemory.attach(spec.memoryAddr, spec.memorySize).bytes,
    serial: spec.serial.map((rings) => (rings ? ringSerialHost(new ByteRing(rings.tx), new ByteRing(rings.rx)) : UNCONNECTED_SERIAL)),
    irqLine: spec.irqchip ? (irq, level) => vm.irqLine(irq, level) : undefined,
    ...(spec.irqchip ? { pitLegacy: (on: boolean) => setPitHpetLegacy(vm, on) } : {}),
    firmware: spec.firmware,
    ...(spec.bios ? { bios: spec.bios } : {}),
    ...(trigger && flag
      ? {
          debugExit: (value: number) => {
            if (value !== trigger.value) return false;
            Atomics.store(flag, 0, 1);
            Atomics.notify(flag, 0);
            return true;
          },
        }
      : {}),
  });
  // Devices raise their IRQ lines as they take their saved state: on a fresh irqchip, before the
  // saved PIC/IOAPIC state is loaded over it (src/snapshot/machine-state.ts says why).
  if (spec.snapshot?.restore) restoreBoardState(board, COM_PORTS, spec.snapshot.restore);
  return board;
}

export function createPcBoard(host: PcBoardHost): Board {
  const pio: PioBus = new Bus<PioDevice>(PIO_ADDRESS_SPACE_SIZE);
  const mmio: MmioBus = new Bus<MmioDevice>();
  const lines = new SharedIrqLines(host.irqLine ?? (() => {}));
  const memory = host.memory ?? new Uint8Array(0);
  const bios = host.bios
    ? loadedBios().board.createBiosDevices(host.bios, {
        memory,
        connectIrq: (irq) => lines.connect(irq),
        reset: () => (board.stop ??= { reason: 'reset' }),
      })
    : undefined;
  const serial = COM_PORTS.map((port, i) => {
    const serialHost = host.serial[i] ?? UNCONNECTED_SERIAL;
    const uart = new Serial16550(bios ? bios.serialHost(i, serialHost) : serialHost, lines.connect(port.irq));
    pio.register(port.base, UART_REGISTER_COUNT, bios ? bios.watchSerial(i, uart) : uart, `${port.name} (16550A)`);
    return uart;
  });
  const board: Board = { memory, pio, mmio, serial, stop: undefined, inputPolls: [] };
  pio.register(
    DEBUG_EXIT_PORT,
    DEBUG_EXIT_IOSIZE,
    new DebugExit((value) => {
      if (!host.debugExit?.(value)) board.stop ??= { reason: 'debug-exit', exitCode: value };
    }),
    'debug-exit',
  );
  const i8042 = new I8042(() => (board.stop ??= { reason: 'reset' }), bios?.i8042Options);
  pio.register(I8042_DATA_PORT, I8042_PORT_COUNT, bios ? bios.watchKeyboard(i8042) : i8042, 'i8042');
  if (host.firmware) pio.register(FW_CFG_IO_BASE, FW_CFG_IO_SIZE, new FwCfg(host.firmware), 'fw_cfg');
  if (bios) {
    bios.register(pio, i8042);
    board.inputPolls.push(() => bios.poll());
  }
  // PCI, ACPI PM, HPET, RTC, the reset registers and QEMU's test devices (after the BIOS: its CMOS clock wins).
  board.chipset = connectPcChipset(board, {
    connectIrq: (irq) => lines.connect(irq),
    memorySize: memory.length,
    cpus: host.firmware?.cpus ?? 1,
    ...(host.pitLegacy ? { hpetLegacy: host.pitLegacy } : {}),
  });
  // Port 0x80 (POST codes) needs no device: unassigned ports already ignore writes and read all ones.
  return board;
}

/**
 * What QEMU does when the HPET takes over IRQ0 (hw/i386/kvm/i8254.c): KVM_PIT_FLAGS_HPET_LEGACY
 * in the in-kernel PIT's state, so its channel 0 stops interrupting (and starts again from its
 * count when the flag goes).
 */
export function setPitHpetLegacy(vm: Pick<VmFd, 'getPit2' | 'setPit2'>, on: boolean): void {
  const pit = vm.getPit2();
  const view = new DataView(pit.buffer, pit.byteOffset, pit.byteLength);
  const flags = view.getUint32(KVM_STATE_LAYOUT.pitFlags, true);
  view.setUint32(KVM_STATE_LAYOUT.pitFlags, on ? flags | KVM_PIT_FLAGS_HPET_LEGACY : flags & ~KVM_PIT_FLAGS_HPET_LEGACY, true);
  vm.setPit2(pit);
}

/** Called with the timers' next deadline (process.hrtime.bigint() ns; undefined: none armed) whenever it may have moved. */
export type DeadlineSink = (deadlineNs: bigint | undefined) => void;

/**
 * The board in this thread, as the exit loop sees it. With `onDeadline`, the board reports its
 * timers' next deadline after every access to a timer device and every poll (only when it
 * changed, except after pollTimers, which always reports: the watcher's timeout is spent then).
 */
export function localDevices(board: Board, onDeadline?: DeadlineSink): ExitDevices {
  const chipset = board.chipset;
  let published: bigint | undefined;
  const report = (always: boolean): void => {
    if (!chipset || !onDeadline) return;
    const next = chipset.nextDeadlineNs();
    if (!always && next === published) return;
    published = next;
    onDeadline(next);
  };
  // Which devices have timers, by the names they are registered under (the exit path already has the name).
  const timed = new Set<string>();
  if (chipset && onDeadline) {
    const timers: unknown[] = [chipset.hpet, chipset.pm, chipset.rtc];
    for (const slot of [...board.pio.entries(), ...board.mmio.entries()]) if (timers.includes(slot.device)) timed.add(slot.name);
  }
  const afterAccess = (name: string | undefined): string | undefined => {
    if (name !== undefined && timed.has(name)) report(false);
    return name;
  };
  // Remade only when a device has been registered since (the board's buses are built before the run).
  let portMap: Uint8Array | undefined;
  let portMapGeneration = -1;
  return {
    io: timed.size ? (access, cpu) => afterAccess(handleIo(access, board.pio, cpu)) : (access, cpu) => handleIo(access, board.pio, cpu),
    get unassignedPorts() {
      if (portMapGeneration !== board.pio.generation) {
        portMap = unassignedPortMap(board.pio);
        portMapGeneration = board.pio.generation;
      }
      return portMap;
    },
    mmio: timed.size ? (access) => afterAccess(handleMmio(access, board.mmio)) : (access) => handleMmio(access, board.mmio),
    pollInput: () => {
      for (const uart of board.serial) uart.pollRx();
      for (const poll of board.inputPolls) poll();
      report(false);
    },
    pollTimers: () => {
      chipset?.poll();
      report(true);
    },
    get stop() {
      return board.stop;
    },
    get suspended() {
      return chipset?.sleepRequested === 'S3';
    },
  };
}

/**
 * The devices a vCPU thread keeps for itself when the board is in a board thread: those that
 * need the vCPU's registers during the exit (vmport), which cannot cross threads.
 */
export function createVcpuLocalBus(memorySize: number): PioBus {
  const pio: PioBus = new Bus<PioDevice>(PIO_ADDRESS_SPACE_SIZE);
  pio.register(VMPORT_PORT, VMPORT_SIZE, new VmPort({ memorySize }), 'vmport');
  return pio;
}
