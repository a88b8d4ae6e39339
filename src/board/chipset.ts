/**
 * The rest of QEMU's PC chipset (i440FX/PIIX) on tskvm's board, in one call from createPcBoard:
 * the PCI host bridge (configuration mechanism #1 at 0xCF8, with the i440FX host bridge, the
 * PIIX3 ISA bridge, the PIIX4 PM function and pci-testdev on bus 0, their BARs assigned as
 * SeaBIOS would), the reset registers (0x92, 0xCF9), the ACPI PM block (0x600), the HPET
 * (0xFED00000), the MC146818 RTC (0x70; the BIOS's own when it brought one), QEMU's pc-testdev
 * (0xE0, 0x2000, 0xFF000000) and vmport (0x5658). Addresses are the ACPI tables' (pc-layout.ts).
 *
 * Interrupts go through `connectIrq` (a GSI's shared line). The I/O APIC pin an HPET timer is
 * routed to is GSI = pin, except pin 2, which tskvm's routing feeds from GSI 0 (pc-irq-routing).
 */
import { facsWakingVector } from '../arch/x86/acpi.js';
import type { RealModeEntry } from '../arch/x86/boot-state.js';
import {
  HPET_ADDRESS,
  IOAPIC_ADDRESS,
  PCI_IO_WINDOW_BASE,
  PCI_IO_WINDOW_END,
  PCI_MMIO_WINDOW_BASE,
  PCI_MMIO_WINDOW_END,
  PM_IO_BASE,
  SCI_IRQ,
} from '../arch/x86/pc-layout.js';
import { AcpiPm, PM_IO_SIZE, type SleepState } from '../devices/acpi-pm.js';
import type { MmioBus, PioBus } from '../devices/bus.js';
import type { MachineStop } from '../devices/device.js';
import { Hpet, HPET_MMIO_SIZE } from '../devices/hpet.js';
import {
  PC_TESTDEV_IOMEM_ADDRESS,
  PC_TESTDEV_IOMEM_SIZE,
  PC_TESTDEV_IOPORT,
  PC_TESTDEV_IRQ_LINES,
  PC_TESTDEV_IRQ_PORT,
  PC_TESTDEV_PORTS_SIZE,
  PcTestdevIomem,
  PcTestdevIrqLines,
  PcTestdevPorts,
} from '../devices/pc-testdev.js';
import { PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_PORT_COUNT, PciHostBridge, PciIoWindow, PciMmioWindow } from '../devices/pci/host.js';
import {
  i440fxHostBridge,
  I440FX_DEVICE,
  Piix4Pm,
  piix3IsaBridge,
  PIIX_DEVICE,
  PIIX_ISA_FUNCTION,
  PIIX_PM_FUNCTION,
} from '../devices/pci/i440fx.js';
import { PCI_TESTDEV_BAR_IO, PCI_TESTDEV_BAR_MEM, PCI_TESTDEV_MEM_SIZE, PciTestdev } from '../devices/pci/testdev.js';
import { PORT_A_PORT, PORT_A_SIZE, ResetControlRegister, SystemControlPortA, type ResetKind } from '../devices/reset-control.js';
import {
  CMOS_CPU_COUNT,
  CMOS_SHUTDOWN_S3_RESUME,
  CMOS_SHUTDOWN_STATUS,
  Mc146818Rtc,
  REG_B_AIE,
  RTC_IRQ,
  RTC_PORT,
  RTC_PORT_COUNT,
  RTC_REG_B,
} from '../devices/rtc.js';
import type { TimedDevice } from '../devices/timed-device.js';
import { VMPORT_PORT, VMPORT_SIZE, VmPort } from '../devices/vmport.js';

/** The HPET's I/O APIC pin 2 is GSI 0 in tskvm's routing (the timer override); other pins are their GSI. */
const HPET_PIN2 = 2;
const TIMER_GSI = 0;

export interface PcChipsetHost {
  /** The setter of GSI `irq`'s line, shared with the other devices on it (SharedIrqLines.connect). */
  connectIrq(irq: number): (level: boolean) => void;
  /** Guest RAM in bytes (vmport, the CMOS memory bytes, where PCI BARs may go). */
  memorySize: number;
  cpus: number;
  /** Port 0x92, 0xCF9 (and the FADT reset register, which is 0xCF9) asked for a reset. */
  reset(kind: ResetKind): void;
  /** The guest wrote SLP_EN: S5 (power off) or S3 (suspend to RAM). */
  sleep(state: SleepState): void;
  /**
   * HPET legacy replacement switched (the guest wrote LEG_RT_CNF, or a restore brought it back):
   * a PC's 8254 stops driving IRQ0 while it is on (KVM_SET_PIT2 with KVM_PIT_FLAGS_HPET_LEGACY).
   * The RTC's IRQ8 is gated here.
   */
  hpetLegacy?(on: boolean): void;
}

/**
 * The chipset's devices; as a TimedDevice (src/devices/timed-device.ts), the earliest deadline of
 * the HPET, the PM timer and the RTC, and one poll() for all three.
 */
export interface PcChipset extends TimedDevice {
  readonly pci: PciHostBridge;
  readonly pciTestdev: PciTestdev;
  readonly pm: AcpiPm;
  readonly hpet: Hpet;
  /** The RTC at 0x70 (the BIOS's when it brought one); absent only if another device holds the port. */
  readonly rtc: Mc146818Rtc | undefined;
  readonly portA: SystemControlPortA;
  readonly resetControl: ResetControlRegister;
  /** Brings the timers' interrupts up to date (HPET comparators, PM timer overflow, RTC alarms). */
  poll(): void;
  /** The host time (ns, process.hrtime.bigint's clock) of the next timer interrupt, if any. */
  nextDeadlineNs(): bigint | undefined;
}

/** The part of the board the chipset needs: its buses. */
export interface ChipsetBoard {
  readonly pio: PioBus;
  readonly mmio: MmioBus;
}

export function registerPcChipset(board: ChipsetBoard, host: PcChipsetHost): PcChipset {
  const { pio, mmio } = board;
  const resetHost = {
    reset: (kind: ResetKind) => {
      if (kind === 'hard') {
        portA.hardReset();
        resetControl.hardReset();
      }
      host.reset(kind);
    },
  };
  const portA = new SystemControlPortA(resetHost);
  const resetControl = new ResetControlRegister(resetHost);
  pio.register(PORT_A_PORT, PORT_A_SIZE, portA, 'port 92 (fast reset, A20)');

  const pci = new PciHostBridge(resetControl);
  pci.attach(I440FX_DEVICE, 0, i440fxHostBridge());
  pci.attach(PIIX_DEVICE, PIIX_ISA_FUNCTION, piix3IsaBridge());
  pci.attach(PIIX_DEVICE, PIIX_PM_FUNCTION, new Piix4Pm(PM_IO_BASE, SCI_IRQ));
  const pciTestdev = new PciTestdev();
  pci.attach(pci.freeSlot(), 0, pciTestdev);
  // What SeaBIOS does: memory BARs from the top of the window down, I/O BARs from 0xC000 up.
  pciTestdev.assignBar(PCI_TESTDEV_BAR_MEM, PCI_MMIO_WINDOW_END - PCI_TESTDEV_MEM_SIZE);
  pciTestdev.assignBar(PCI_TESTDEV_BAR_IO, PCI_IO_WINDOW_BASE);
  pciTestdev.enableDecoding();
  pio.register(PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_PORT_COUNT, pci, 'PCI host bridge (i440FX, 0xCF9 reset control)');
  pio.register(PCI_IO_WINDOW_BASE, PCI_IO_WINDOW_END - PCI_IO_WINDOW_BASE, new PciIoWindow(pci, PCI_IO_WINDOW_BASE), 'PCI I/O BARs');
  // The window may begin inside RAM on a large guest: KVM never exits for RAM, so only BARs above it are reachable.
  mmio.register(
    PCI_MMIO_WINDOW_BASE,
    PCI_MMIO_WINDOW_END - PCI_MMIO_WINDOW_BASE,
    new PciMmioWindow(pci, PCI_MMIO_WINDOW_BASE),
    'PCI memory BARs',
  );
  if (PCI_MMIO_WINDOW_END > IOAPIC_ADDRESS) throw new Error('pc-layout: the PCI window overlaps the I/O APIC');

  const pm = new AcpiPm({ setSci: host.connectIrq(SCI_IRQ), sleep: (state) => host.sleep(state) });
  pio.register(PM_IO_BASE, PM_IO_SIZE, pm, 'ACPI PM (PIIX4)');

  // The HPET is one device per line it drives (a line stays high while any device holds it).
  const hpetLines = new Map<number, (level: boolean) => void>();
  const hpetLine = (pin: number): ((level: boolean) => void) => {
    const line = pin === HPET_PIN2 ? TIMER_GSI : pin;
    let set = hpetLines.get(line);
    if (!set) hpetLines.set(line, (set = host.connectIrq(line)));
    return set;
  };
  // Legacy replacement (LEG_RT_CNF) takes IRQ0 from the 8254 (the board's hook: the in-kernel PIT) and IRQ8 from the RTC.
  const hpet = new Hpet({
    setIrq: (pin, level) => hpetLine(pin)(level),
    legacyChanged: (on) => {
      rtc?.gateIrq(on);
      host.hpetLegacy?.(on);
    },
  });
  mmio.register(HPET_ADDRESS, HPET_MMIO_SIZE, hpet, 'HPET');

  // The BIOS registers its own RTC first (local time, its disks' CMOS bytes): the same device, taken over here.
  let rtc: Mc146818Rtc | undefined;
  const rtcSlot = pio.find(RTC_PORT);
  if (rtcSlot === undefined) {
    rtc = new Mc146818Rtc({ setIrq: host.connectIrq(RTC_IRQ) }, { memorySize: host.memorySize, cpus: host.cpus });
    pio.register(RTC_PORT, RTC_PORT_COUNT, rtc, 'RTC (MC146818)');
  } else if (rtcSlot.device instanceof Mc146818Rtc) {
    rtc = rtcSlot.device;
    rtc.setCmos(CMOS_CPU_COUNT, Math.max(0, host.cpus - 1));
  }

  const testdevLines = Array.from({ length: PC_TESTDEV_IRQ_LINES }, (_, line) => host.connectIrq(line));
  const testdevHost = { setIrqLine: (line: number, level: boolean) => testdevLines[line]?.(level) };
  pio.register(PC_TESTDEV_IOPORT, PC_TESTDEV_PORTS_SIZE, new PcTestdevPorts(testdevHost), 'pc-testdev');
  pio.register(PC_TESTDEV_IRQ_PORT, PC_TESTDEV_IRQ_LINES, new PcTestdevIrqLines(testdevHost), 'pc-testdev IRQ lines');
  mmio.register(PC_TESTDEV_IOMEM_ADDRESS, PC_TESTDEV_IOMEM_SIZE, new PcTestdevIomem(), 'pc-testdev iomem');
  pio.register(VMPORT_PORT, VMPORT_SIZE, new VmPort({ memorySize: host.memorySize }), 'vmport');

  return {
    pci,
    pciTestdev,
    pm,
    hpet,
    rtc,
    portA,
    resetControl,
    poll() {
      hpet.poll();
      pm.poll();
      rtc?.poll();
    },
    nextDeadlineNs() {
      // Asked after every access to a timer device: no arrays.
      const earlier = (a: bigint | undefined, b: bigint | undefined): bigint | undefined =>
        a === undefined || (b !== undefined && b < a) ? b : a;
      return earlier(earlier(hpet.nextDeadlineNs(), pm.nextDeadlineNs()), rtc?.nextDeadlineNs());
    },
  };
}

/** What createPcBoard hands over: its buses, its end-of-run slot and its poll list. */
export interface PcChipsetBoard extends ChipsetBoard {
  readonly memory: Uint8Array;
  stop: MachineStop | undefined;
  readonly inputPolls: (() => void)[];
}

/** How a suspended machine came back: at the OS's waking vector, or through a full reboot (no vector set). */
export type ResumeFromS3 = { kind: 'wake'; entry: RealModeEntry } | { kind: 'reboot' };

export interface ConnectedPcChipset extends PcChipset {
  /** The guest entered a sleep state the run has not acted on yet (S3 until resumed; S5 until powered off). */
  readonly sleepRequested: SleepState | undefined;
  /**
   * In S3: sleeps (this thread) until a wake event — the RTC alarm when the guest enabled it
   * (RTC_EN and AIE, as s3.c does) — then does what firmware does on resume: WAK_STS/RTC_STS set,
   * CMOS shutdown status cleared, and the FACS waking vector entered in real mode. Undefined when
   * `stopRequested()` turned true first (a timeout, a signal).
   */
  resumeFromS3(stopRequested: () => boolean): ResumeFromS3 | undefined;
  /**
   * The same in two steps, for a thread that must not sleep (the caller's own event loop):
   * when the wake event is due (undefined: no alarm armed, only a stop ends the sleep)...
   */
  s3WakeAtNs(): bigint | undefined;
  /** ... and, once it has come, the firmware's resume. */
  wakeFromS3(): ResumeFromS3;
}

/** How long a suspended machine sleeps between looks at a stop request. */
const S3_STOP_POLL_MS = 20;
const NS_PER_MS = 1_000_000n;

/**
 * One step of waiting in S3 for the wake event due at `wakeAtNs` (undefined: none armed): the
 * milliseconds to sleep before looking again (at a stop request, then at the clock), or undefined
 * once the wake event is due. Both ways of sleeping use it: blocking (resumeFromS3) and with timers.
 */
export function s3NapMs(wakeAtNs: bigint | undefined, nowNs: bigint = process.hrtime.bigint()): number | undefined {
  if (wakeAtNs === undefined) return S3_STOP_POLL_MS;
  if (wakeAtNs <= nowNs) return undefined;
  return Math.min(S3_STOP_POLL_MS, Number((wakeAtNs - nowNs) / NS_PER_MS) + 1);
}

/**
 * The chipset on the PC board: resets end the run as the i8042's does (reason 'reset'); the
 * timers are polled with the board's input. A sleep request is kept in `sleepRequested` for the
 * exit loop (see the report on issue 14: MachineStop 'poweroff', and S3 through resumeFromS3).
 */
export function connectPcChipset(
  board: PcChipsetBoard,
  env: Pick<PcChipsetHost, 'connectIrq' | 'memorySize' | 'cpus' | 'hpetLegacy'>,
): ConnectedPcChipset {
  let sleepRequested: SleepState | undefined;
  const chipset = registerPcChipset(board, {
    ...env,
    reset: () => (board.stop ??= { reason: 'reset' }),
    sleep: (state) => {
      sleepRequested = state;
      if (state === 'S5') board.stop ??= { reason: 'poweroff' };
      // What QEMU's RTC does on suspend: the shutdown status tells the BIOS to resume, not boot.
      if (state === 'S3') chipset.rtc?.setCmos(CMOS_SHUTDOWN_STATUS, CMOS_SHUTDOWN_S3_RESUME);
    },
  });
  board.inputPolls.push(() => chipset.poll());
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const s3WakeAtNs = (): bigint | undefined => {
    const rtc = chipset.rtc;
    // The wake event: the next RTC alarm, if the guest armed it (AIE) and let it wake (RTC_EN).
    const alarmArmed = rtc !== undefined && (rtc.readRegister(RTC_REG_B) & REG_B_AIE) !== 0 && chipset.pm.wakeEnabled('rtc');
    return alarmArmed ? rtc.nextAlarmNs() : undefined;
  };
  const wakeFromS3 = (): ResumeFromS3 => {
    const rtc = chipset.rtc;
    rtc?.poll(); // the alarm's AF and IRQ 8, as the guest will find them
    chipset.pm.wake('rtc');
    sleepRequested = undefined;
    rtc?.setCmos(CMOS_SHUTDOWN_STATUS, 0);
    const vector = facsWakingVector(board.memory);
    if (vector === undefined) return { kind: 'reboot' };
    // SeaBIOS's s3_resume: a far call to the vector as segment:offset, every other segment 0.
    const cs = vector >>> 4;
    return { kind: 'wake', entry: { cs, ip: vector & 0xf, ds: 0, es: 0, fs: 0, gs: 0, ss: 0, sp: 0, bp: 0, dx: 0 } };
  };
  return {
    ...chipset,
    get sleepRequested() {
      return sleepRequested;
    },
    s3WakeAtNs,
    wakeFromS3,
    resumeFromS3(stopRequested) {
      const wakeAt = s3WakeAtNs();
      for (;;) {
        if (stopRequested()) return undefined;
        const napMs = s3NapMs(wakeAt);
        if (napMs === undefined) return wakeFromS3();
        Atomics.wait(nap, 0, 0, napMs);
      }
    },
  };
}
