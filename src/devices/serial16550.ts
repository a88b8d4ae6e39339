/**
 * A 16550A UART (COM1 on a PC), modelled on the National Semiconductor PC16550D data sheet, with
 * QEMU's hw/char/serial.c and rust-vmm vm-superio as cross-checks.
 *
 * The device is a pure state machine: bytes leave through `host.transmit()`, arrive through
 * `host.receive()`, and the interrupt line is reported through `irq(level)`. There are no timers,
 * so anything the real chip does "after a character time" happens at once:
 * - A byte written to THR is on its way the moment it is written (THRE/TEMT stay set), unless the
 *   host's backlog has reached SERIAL_TX_BACKLOG_LIMIT; then bytes wait in the TX FIFO (THRE and
 *   TEMT clear) until the backlog drains. This is how a slow reader throttles a polling guest
 *   without ever blocking the vCPU.
 * - The RX FIFO is topped up from the host whenever it has room and the guest looks at RBR, LSR or
 *   IIR (or the machine calls `pollRx()`), so input waits host-side and no byte is ever lost.
 *
 * Simplifications, all invisible to a guest that follows the data sheet:
 * - Character timeout (IIR 0x0C): with FIFOs enabled, data below the RX trigger level is reported
 *   as a timeout at once (there is no clock to wait four character times with). Like QEMU and real
 *   parts, it is masked by IER.ERBFI.
 * - Received bytes never carry parity/framing errors or breaks, so LSR.PE/FE/BI and LSR bit 7 (error
 *   in RX FIFO) are never set; only OE can happen, by overrunning the RX FIFO in loopback.
 * - The divisor latch does nothing but read back; it resets to 12 (9600 baud from the PC's
 *   1.8432 MHz clock, QEMU's default). The data sheet leaves it undefined after master reset.
 * - The UART is an 8-bit device: a 2- or 4-byte access uses only the low byte of the value, and a
 *   read returns the register zero-extended.
 * - IRQ line: as on the PC, the UART's interrupt reaches the PIC only while MCR.OUT2 is set. In
 *   loopback the OUT2 pin is forced inactive (OUT2 is looped to MSR.DCD instead), so the line stays
 *   low; IIR still reports pending interrupts, as the data sheet says ("fully operational").
 */
import type { PioDevice, PioSize, Snapshottable } from './device.js';

/** What the UART needs from the host side. All three calls must be cheap and never block. */
export interface SerialHost {
  /** Takes one byte the guest transmitted; never blocks. */
  transmit(byte: number): void;
  /** Bytes handed to transmit() that the host has not yet delivered to its reader. */
  txBacklog(): number;
  /** Next byte of input waiting host-side, or -1 if none. Called only when the RX FIFO has room, so input is never lost. */
  receive(): number;
}

/** Host backlog at which THRE clears and the UART starts holding bytes. */
export const SERIAL_TX_BACKLOG_LIMIT = 1 << 20; // 1 MiB

/** PC COM1: ports 0x3F8–0x3FF, ISA IRQ 4. */
export const COM1_BASE = 0x3f8;
export const COM1_IRQ = 4;
/** Number of registers (ports) a 16550A decodes. */
export const UART_REGISTER_COUNT = 8;
/** Depth of each 16550A FIFO. */
export const UART_FIFO_SIZE = 16;
/** Divisor latch value after reset: 115200 / 12 = 9600 baud. */
export const UART_DEFAULT_DIVISOR = 12;

// Register offsets (data sheet Table II). Offsets 0 and 1 depend on LCR.DLAB.
export const UART_RBR = 0; // receiver buffer (read, DLAB=0)
export const UART_THR = 0; // transmitter holding (write, DLAB=0)
export const UART_DLL = 0; // divisor latch LSB (DLAB=1)
export const UART_IER = 1; // interrupt enable (DLAB=0)
export const UART_DLM = 1; // divisor latch MSB (DLAB=1)
export const UART_IIR = 2; // interrupt identification (read)
export const UART_FCR = 2; // FIFO control (write)
export const UART_LCR = 3; // line control
export const UART_MCR = 4; // modem control
export const UART_LSR = 5; // line status
export const UART_MSR = 6; // modem status
export const UART_SCR = 7; // scratch

// IER: interrupt enable.
export const IER_ERBFI = 0x01; // received data available (and character timeout)
export const IER_ETBEI = 0x02; // transmitter holding register empty
export const IER_ELSI = 0x04; // receiver line status
export const IER_EDSSI = 0x08; // modem status
export const IER_MASK = 0x0f; // bits 4–7 are always 0 on a 16550A

// IIR: interrupt identification. Bit 0 is "no interrupt pending" (active low).
export const IIR_NO_INT = 0x01;
export const IIR_ID_MASK = 0x0f;
export const IIR_MSI = 0x00; // modem status (lowest priority)
export const IIR_THRI = 0x02; // THR empty
export const IIR_RDI = 0x04; // received data available
export const IIR_RLSI = 0x06; // receiver line status (highest priority)
export const IIR_CTI = 0x0c; // character timeout (same priority as RDI)
export const IIR_FIFO_ENABLED = 0xc0; // both bits set when FCR.FIFO_ENABLE is set

// FCR: FIFO control (write-only).
export const FCR_FIFO_ENABLE = 0x01;
export const FCR_RX_FIFO_RESET = 0x02; // self-clearing
export const FCR_TX_FIFO_RESET = 0x04; // self-clearing
export const FCR_DMA_MODE = 0x08;
export const FCR_RX_TRIGGER_MASK = 0xc0;
export const FCR_RX_TRIGGER_1 = 0x00;
export const FCR_RX_TRIGGER_4 = 0x40;
export const FCR_RX_TRIGGER_8 = 0x80;
export const FCR_RX_TRIGGER_14 = 0xc0;
/** The FCR bits that are latched (the resets are self-clearing). */
const FCR_LATCHED = FCR_FIFO_ENABLE | FCR_DMA_MODE | FCR_RX_TRIGGER_MASK;
/** RX trigger level in bytes, indexed by FCR bits 6–7. */
const RX_TRIGGER_LEVELS = [1, 4, 8, 14] as const;
const FCR_RX_TRIGGER_SHIFT = 6;

// LCR: line control.
export const LCR_WLS_MASK = 0x03; // word length select: 5–8 bits
export const LCR_STB = 0x04; // stop bits
export const LCR_PEN = 0x08; // parity enable
export const LCR_EPS = 0x10; // even parity select
export const LCR_STICK_PARITY = 0x20;
export const LCR_SBC = 0x40; // set break
export const LCR_DLAB = 0x80; // divisor latch access bit

// MCR: modem control.
export const MCR_DTR = 0x01;
export const MCR_RTS = 0x02;
export const MCR_OUT1 = 0x04;
export const MCR_OUT2 = 0x08; // on a PC, gates the UART's interrupt onto the ISA IRQ line
export const MCR_LOOP = 0x10;
export const MCR_MASK = 0x1f; // bits 5–7 are always 0 on a 16550A

// LSR: line status.
export const LSR_DR = 0x01; // data ready
export const LSR_OE = 0x02; // overrun error
export const LSR_PE = 0x04; // parity error
export const LSR_FE = 0x08; // framing error
export const LSR_BI = 0x10; // break interrupt
export const LSR_THRE = 0x20; // transmitter holding register (or TX FIFO) empty
export const LSR_TEMT = 0x40; // transmitter empty: THR/FIFO and shift register
export const LSR_RX_FIFO_ERROR = 0x80; // a byte in the RX FIFO has PE/FE/BI
/** The LSR bits that raise a receiver line status interrupt and clear when LSR is read. */
export const LSR_ERROR_MASK = LSR_OE | LSR_PE | LSR_FE | LSR_BI;

// MSR: modem status. Low nibble: deltas since the last MSR read; high nibble: the inputs.
export const MSR_DCTS = 0x01;
export const MSR_DDSR = 0x02;
export const MSR_TERI = 0x04; // trailing edge of RI (RI went from 1 to 0)
export const MSR_DDCD = 0x08;
export const MSR_CTS = 0x10;
export const MSR_DSR = 0x20;
export const MSR_RI = 0x40;
export const MSR_DCD = 0x80;
export const MSR_DELTA_MASK = 0x0f;
/** Outside loopback, the modem inputs read as a live, ready peer: carrier, data set ready, clear to send. */
export const MSR_LINES_CONNECTED = MSR_DCD | MSR_DSR | MSR_CTS;

const BYTE_MASK = 0xff;
/** How far each modem input sits above its delta bit. */
const MSR_DELTA_SHIFT = 4;

/**
 * Everything the guest can observe of a UART, as plain data (snapshots): the registers, the
 * pending THRE interrupt and both FIFOs' bytes, oldest first. The interrupt line's level is not
 * in it: it follows from the registers, and restore() drives the line to it. The host side
 * (where bytes go and come from) is the restoring run's, and so is `txDropped`, a host statistic.
 */
export interface Serial16550State {
  ier: number;
  fcr: number;
  lcr: number;
  mcr: number;
  scr: number;
  dll: number;
  dlm: number;
  lsrErrors: number;
  msrLines: number;
  msrDeltas: number;
  thrIpending: boolean;
  rbr: number;
  rxFifo: number[];
  txFifo: number[];
}

export class Serial16550 implements PioDevice, Snapshottable<Serial16550State> {
  /**
   * Bytes the guest wrote that will never reach the host: THR written while the TX FIFO (or the
   * 1-byte THR without FIFOs) was full, plus held bytes discarded by an FCR TX FIFO reset.
   */
  txDropped = 0;

  private ier = 0;
  private fcr = 0;
  private lcr = 0;
  private mcr = 0;
  private scr = 0;
  private dll = UART_DEFAULT_DIVISOR & BYTE_MASK;
  private dlm = UART_DEFAULT_DIVISOR >>> 8;
  /** Sticky LSR error bits (OE/PE/FE/BI); cleared by reading LSR. */
  private lsrErrors = 0;
  /** MSR upper nibble as the guest last saw it change, and the accumulated delta bits. */
  private msrLines = MSR_LINES_CONNECTED;
  private msrDeltas = 0;
  /** THRE interrupt pending: set when THR becomes empty (or ETBEI is enabled while it is). */
  private thrIpending = false;
  private rbr = 0;
  private level = false;

  private readonly rxFifo = new Uint8Array(UART_FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;
  private readonly txFifo = new Uint8Array(UART_FIFO_SIZE);
  private txHead = 0;
  private txCount = 0;

  constructor(
    private readonly host: SerialHost,
    private readonly irq?: (level: boolean) => void,
  ) {}

  /** The level the interrupt line is at now (what was last passed to `irq`). */
  get irqLevel(): boolean {
    return this.level;
  }

  /** Master reset (data sheet's reset column): FIFOs emptied, held TX bytes discarded. */
  reset(): void {
    this.ier = 0;
    this.fcr = 0;
    this.lcr = 0;
    this.mcr = 0;
    this.scr = 0;
    this.dll = UART_DEFAULT_DIVISOR & BYTE_MASK;
    this.dlm = UART_DEFAULT_DIVISOR >>> 8;
    this.lsrErrors = 0;
    this.msrLines = MSR_LINES_CONNECTED;
    this.msrDeltas = 0;
    this.thrIpending = false;
    this.rbr = 0;
    this.rxHead = this.rxCount = 0;
    this.txHead = this.txCount = 0;
    this.updateIrq();
  }

  pioRead(offset: number, _size: PioSize): number {
    if (this.txCount !== 0) this.pollTx();
    switch (offset & (UART_REGISTER_COUNT - 1)) {
      case UART_RBR:
        return this.lcr & LCR_DLAB ? this.dll : this.readRbr();
      case UART_IER:
        return this.lcr & LCR_DLAB ? this.dlm : this.ier;
      case UART_IIR:
        return this.readIir();
      case UART_LCR:
        return this.lcr;
      case UART_MCR:
        return this.mcr;
      case UART_LSR:
        return this.readLsr();
      case UART_MSR:
        return this.readMsr();
      default: // UART_SCR
        return this.scr;
    }
  }

  pioWrite(offset: number, _size: PioSize, value: number): void {
    if (this.txCount !== 0) this.pollTx();
    const byte = value & BYTE_MASK;
    switch (offset & (UART_REGISTER_COUNT - 1)) {
      case UART_THR:
        if (this.lcr & LCR_DLAB) this.dll = byte;
        else this.writeThr(byte);
        return;
      case UART_IER:
        if (this.lcr & LCR_DLAB) this.dlm = byte;
        else this.writeIer(byte);
        return;
      case UART_FCR:
        this.writeFcr(byte);
        return;
      case UART_LCR:
        this.lcr = byte;
        return;
      case UART_MCR:
        this.writeMcr(byte);
        return;
      case UART_LSR:
      case UART_MSR:
        return; // read-only: writes are ignored (the data sheet reserves them for factory test)
      default: // UART_SCR
        this.scr = byte;
    }
  }

  state(): Serial16550State {
    return {
      ier: this.ier,
      fcr: this.fcr,
      lcr: this.lcr,
      mcr: this.mcr,
      scr: this.scr,
      dll: this.dll,
      dlm: this.dlm,
      lsrErrors: this.lsrErrors,
      msrLines: this.msrLines,
      msrDeltas: this.msrDeltas,
      thrIpending: this.thrIpending,
      rbr: this.rbr,
      rxFifo: fifoBytes(this.rxFifo, this.rxHead, this.rxCount),
      txFifo: fifoBytes(this.txFifo, this.txHead, this.txCount),
    };
  }

  /**
   * Takes a state() from any UART (another run, another process) and drives the IRQ line to what
   * it implies: on a fresh in-kernel irqchip that re-establishes the line's level before the
   * saved PIC/IOAPIC state is loaded over it. Throws RangeError on a state no 16550A can be in.
   */
  restore(state: Serial16550State): void {
    const byte = (name: keyof Serial16550State, mask = BYTE_MASK): number => {
      const v = state[name];
      if (typeof v !== 'number' || !Number.isInteger(v) || (v & ~mask) !== 0)
        throw new RangeError(`16550A state: ${name} is ${String(v)}, not a register value (mask 0x${mask.toString(16)})`);
      return v;
    };
    const fcr = byte('fcr', FCR_LATCHED);
    const capacity = fcr & FCR_FIFO_ENABLE ? UART_FIFO_SIZE : 1;
    const fifo = (name: 'rxFifo' | 'txFifo'): number[] => {
      const bytes = state[name];
      if (!Array.isArray(bytes) || bytes.length > capacity || !bytes.every((b) => Number.isInteger(b) && b >= 0 && b <= BYTE_MASK)) {
        throw new RangeError(`16550A state: ${name} must be at most ${capacity} bytes`);
      }
      return bytes;
    };
    if (typeof state.thrIpending !== 'boolean') throw new RangeError('16550A state: thrIpending must be a boolean');
    const rx = fifo('rxFifo');
    const tx = fifo('txFifo');
    this.ier = byte('ier', IER_MASK);
    this.fcr = fcr;
    this.lcr = byte('lcr');
    this.mcr = byte('mcr', MCR_MASK);
    this.scr = byte('scr');
    this.dll = byte('dll');
    this.dlm = byte('dlm');
    this.lsrErrors = byte('lsrErrors', LSR_ERROR_MASK);
    this.msrLines = byte('msrLines', BYTE_MASK & ~MSR_DELTA_MASK);
    this.msrDeltas = byte('msrDeltas', MSR_DELTA_MASK);
    this.thrIpending = state.thrIpending;
    this.rbr = byte('rbr');
    this.rxFifo.set(rx);
    this.rxHead = 0;
    this.rxCount = rx.length;
    this.txFifo.set(tx);
    this.txHead = 0;
    this.txCount = tx.length;
    this.updateIrq();
  }

  /** Moves held TX bytes to the host (or, in loopback, to the RX FIFO) while the backlog allows. */
  pollTx(): void {
    if (this.txCount === 0) return;
    const loop = (this.mcr & MCR_LOOP) !== 0;
    while (this.txCount !== 0) {
      if (!loop && this.host.txBacklog() >= SERIAL_TX_BACKLOG_LIMIT) break;
      const byte = this.txFifo[this.txHead] as number;
      this.txHead = (this.txHead + 1) % UART_FIFO_SIZE;
      this.txCount--;
      if (loop) this.loopbackReceive(byte);
      else this.host.transmit(byte);
    }
    if (this.txCount === 0) {
      this.thrIpending = true; // THR just became empty
      this.updateIrq();
    }
  }

  /**
   * The host has new input: with the receive interrupt enabled (IER.ERBFI), top the RX FIFO up
   * and raise the interrupt now, as a real UART does when a character arrives, so a guest halted
   * waiting for it wakes. Without ERBFI the guest polls LSR/RBR, which fetch the input then:
   * bytes are not pulled in early where a FIFO reset during the guest's set-up would drop them.
   * In loopback the serial input is disconnected.
   */
  pollRx(): void {
    if (this.ier & IER_ERBFI && this.fillRx()) this.updateIrq();
  }

  // --- registers ------------------------------------------------------------------------------

  private readRbr(): number {
    this.fillRx();
    if (this.rxCount !== 0) {
      this.rbr = this.rxFifo[this.rxHead] as number;
      this.rxHead = (this.rxHead + 1) % UART_FIFO_SIZE;
      this.rxCount--;
      this.fillRx();
    }
    this.updateIrq();
    return this.rbr;
  }

  private readIir(): number {
    this.fillRx();
    const iir = this.pendingInterrupt() | (this.fcr & FCR_FIFO_ENABLE ? IIR_FIFO_ENABLED : 0);
    // Reading IIR acknowledges a THRE interrupt, but only when it is the one reported.
    if ((iir & IIR_ID_MASK) === IIR_THRI) this.thrIpending = false;
    this.updateIrq();
    return iir;
  }

  private readLsr(): number {
    const arrived = this.fillRx();
    const lsr = (this.rxCount !== 0 ? LSR_DR : 0) | this.lsrErrors | (this.txCount === 0 ? LSR_THRE | LSR_TEMT : 0);
    // OE/PE/FE/BI report an event once; reading LSR clears them and their interrupt. Bytes just
    // taken from the host raise the receive interrupt (nothing else will: pollRx sees no news).
    if (this.lsrErrors !== 0 || arrived) {
      this.lsrErrors = 0;
      this.updateIrq();
    }
    return lsr;
  }

  private readMsr(): number {
    const msr = this.msrLines | this.msrDeltas;
    if (this.msrDeltas !== 0) {
      this.msrDeltas = 0;
      this.updateIrq();
    }
    return msr;
  }

  private writeThr(byte: number): void {
    // Writing THR acknowledges a THRE interrupt; drop the line first so a new THRE is a new edge.
    this.thrIpending = false;
    this.updateIrq();
    if (this.mcr & MCR_LOOP) {
      this.loopbackReceive(byte);
      this.thrIpending = true; // sent at once, so THR is empty again
    } else if (this.txCount === 0 && this.host.txBacklog() < SERIAL_TX_BACKLOG_LIMIT) {
      this.host.transmit(byte);
      this.thrIpending = true;
    } else if (this.txCount < this.txCapacity()) {
      this.txFifo[(this.txHead + this.txCount) % UART_FIFO_SIZE] = byte;
      this.txCount++;
    } else {
      this.txDropped++; // a full THR/FIFO loses the byte, as the hardware does
    }
    this.updateIrq();
  }

  private writeIer(byte: number): void {
    const old = this.ier;
    this.ier = byte & IER_MASK;
    // Enabling ETBEI while THR is empty raises a THRE interrupt at once (Linux's probe relies on it).
    if (!(old & IER_ETBEI) && this.ier & IER_ETBEI && this.txCount === 0) this.thrIpending = true;
    this.updateIrq();
  }

  private writeFcr(byte: number): void {
    const enable = byte & FCR_FIFO_ENABLE;
    const resets = FCR_RX_FIFO_RESET | FCR_TX_FIFO_RESET;
    // The other bits are only programmed when FIFO enable is set in the same write; changing the
    // enable bit itself empties both FIFOs.
    let clear = enable ? byte & resets : 0;
    if ((byte ^ this.fcr) & FCR_FIFO_ENABLE) clear = resets;
    if (clear & FCR_RX_FIFO_RESET) this.rxHead = this.rxCount = 0;
    if (clear & FCR_TX_FIFO_RESET && this.txCount !== 0) {
      this.txDropped += this.txCount; // held bytes that will now never reach the host
      this.txHead = this.txCount = 0;
      this.thrIpending = true; // THR/FIFO just became empty
    }
    this.fcr = enable ? byte & FCR_LATCHED : 0;
    this.updateIrq();
  }

  private writeMcr(byte: number): void {
    const old = this.mcr;
    this.mcr = byte & MCR_MASK;
    this.updateModemLines();
    // Held bytes may now have somewhere to go (entering loopback loops them back).
    if ((old ^ this.mcr) & MCR_LOOP && this.txCount !== 0) this.pollTx();
    this.updateIrq(); // OUT2 and LOOP gate the line
  }

  // --- internals ------------------------------------------------------------------------------

  private txCapacity(): number {
    return this.fcr & FCR_FIFO_ENABLE ? UART_FIFO_SIZE : 1;
  }

  private rxCapacity(): number {
    return this.fcr & FCR_FIFO_ENABLE ? UART_FIFO_SIZE : 1;
  }

  /** Pulls host input into the RX FIFO while it has room. Returns whether anything arrived. */
  private fillRx(): boolean {
    if (this.mcr & MCR_LOOP) return false;
    const capacity = this.rxCapacity();
    let got = false;
    while (this.rxCount < capacity) {
      const byte = this.host.receive();
      if (byte < 0) break;
      this.rxFifo[(this.rxHead + this.rxCount) % UART_FIFO_SIZE] = byte & BYTE_MASK;
      this.rxCount++;
      got = true;
    }
    return got;
  }

  /** A byte from the looped-back transmitter arrives at the receiver. */
  private loopbackReceive(byte: number): void {
    if (this.rxCount < this.rxCapacity()) {
      this.rxFifo[(this.rxHead + this.rxCount) % UART_FIFO_SIZE] = byte;
      this.rxCount++;
      return;
    }
    this.lsrErrors |= LSR_OE;
    // Without FIFOs the new character overwrites RBR; with FIFOs it is lost (data sheet, LSR bit 1).
    if (!(this.fcr & FCR_FIFO_ENABLE)) this.rxFifo[this.rxHead] = byte;
  }

  /** Recomputes the modem inputs and accumulates delta bits for whatever changed. */
  private updateModemLines(): void {
    let lines = MSR_LINES_CONNECTED;
    if (this.mcr & MCR_LOOP) {
      // Loopback wires the modem outputs to the inputs: RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD.
      lines =
        (this.mcr & MCR_RTS ? MSR_CTS : 0) |
        (this.mcr & MCR_DTR ? MSR_DSR : 0) |
        (this.mcr & MCR_OUT1 ? MSR_RI : 0) |
        (this.mcr & MCR_OUT2 ? MSR_DCD : 0);
    }
    const changed = (lines ^ this.msrLines) >>> MSR_DELTA_SHIFT;
    // TERI reports only the trailing edge of RI (1 → 0).
    const riFell = this.msrLines & MSR_RI && !(lines & MSR_RI);
    this.msrDeltas |= (changed & ~MSR_TERI) | (riFell ? MSR_TERI : 0);
    this.msrLines = lines;
  }

  /** The highest-priority enabled interrupt, as IIR bits 0–3. */
  private pendingInterrupt(): number {
    const ier = this.ier;
    if (ier & IER_ELSI && this.lsrErrors & LSR_ERROR_MASK) return IIR_RLSI;
    if (ier & IER_ERBFI && this.rxCount !== 0) {
      if (!(this.fcr & FCR_FIFO_ENABLE)) return IIR_RDI;
      const trigger = RX_TRIGGER_LEVELS[this.fcr >>> FCR_RX_TRIGGER_SHIFT] as number;
      return this.rxCount >= trigger ? IIR_RDI : IIR_CTI;
    }
    if (ier & IER_ETBEI && this.thrIpending) return IIR_THRI;
    if (ier & IER_EDSSI && this.msrDeltas !== 0) return IIR_MSI;
    return IIR_NO_INT;
  }

  private updateIrq(): void {
    const gated = (this.mcr & (MCR_OUT2 | MCR_LOOP)) === MCR_OUT2;
    const level = gated && this.pendingInterrupt() !== IIR_NO_INT;
    if (level === this.level) return;
    this.level = level;
    this.irq?.(level);
  }
}

/** A ring's bytes, oldest first. */
function fifoBytes(ring: Uint8Array, head: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => ring[(head + i) % UART_FIFO_SIZE] as number);
}
