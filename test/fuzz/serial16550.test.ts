/**
 * Fuzzing the 16550A (src/devices/serial16550.ts) through its PioDevice interface: random
 * sequences of register reads and writes of every size and offset, host input arriving, the host
 * backlog rising and falling, master resets and snapshot/restore into a fresh UART. After every
 * step the UART must agree with a model of what the data sheet promises:
 * - FIFO counts stay within 0..16 (0..1 with FIFOs off), and nothing grows without bound;
 * - IIR and LSR bits are consistent with each other and with IER, FCR and the FIFOs; the IRQ line
 *   is high exactly when OUT2 gates a pending, enabled interrupt, and only changes on an edge;
 * - outside loopback, every byte the host offers reaches RBR exactly once, in order, unless a
 *   FIFO reset discards it; every byte written to THR reaches the host in order, is held, or is
 *   counted as dropped; and nothing is held while the host backlog is under its limit.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PioSize } from '../../src/devices/device.js';
import {
  FCR_FIFO_ENABLE,
  FCR_RX_FIFO_RESET,
  FCR_TX_FIFO_RESET,
  IER_EDSSI,
  IER_ELSI,
  IER_ERBFI,
  IER_ETBEI,
  IER_MASK,
  IIR_CTI,
  IIR_FIFO_ENABLED,
  IIR_ID_MASK,
  IIR_MSI,
  IIR_NO_INT,
  IIR_RDI,
  IIR_RLSI,
  IIR_THRI,
  LCR_DLAB,
  LSR_BI,
  LSR_DR,
  LSR_ERROR_MASK,
  LSR_FE,
  LSR_OE,
  LSR_PE,
  LSR_RX_FIFO_ERROR,
  LSR_TEMT,
  LSR_THRE,
  MCR_DTR,
  MCR_LOOP,
  MCR_MASK,
  MCR_OUT1,
  MCR_OUT2,
  MCR_RTS,
  MSR_CTS,
  MSR_DCD,
  MSR_DELTA_MASK,
  MSR_DSR,
  MSR_LINES_CONNECTED,
  MSR_RI,
  SERIAL_TX_BACKLOG_LIMIT,
  Serial16550,
  UART_DEFAULT_DIVISOR,
  UART_FIFO_SIZE,
  UART_IER,
  UART_IIR,
  UART_LCR,
  UART_LSR,
  UART_MCR,
  UART_MSR,
  UART_RBR,
  UART_SCR,
  type SerialHost,
} from '../../src/devices/serial16550.js';
import { FUZZ_TIMEOUT_MS, fuzz, holds, same, sameList } from './fuzz-config.js';

const RX_TRIGGER_LEVELS = [1, 4, 8, 14] as const;
const FCR_RX_TRIGGER_SHIFT = 6;
const BYTE_MASK = 0xff;
/** IIR bits 4-5 always read 0 on a 16550A. */
const IIR_RESERVED = 0x30;
const IIR_IDS = [IIR_NO_INT, IIR_MSI, IIR_THRI, IIR_RDI, IIR_RLSI, IIR_CTI];

type Op =
  | { kind: 'read'; offset: number; size: PioSize }
  | { kind: 'write'; offset: number; size: PioSize; value: number }
  | { kind: 'input'; bytes: number[]; poll: boolean }
  | { kind: 'backlog'; bytes: number }
  | { kind: 'pollTx' }
  | { kind: 'reset' }
  | { kind: 'snapshot' };

const sizeArb = fc.constantFrom<PioSize>(1, 2, 4);
/** Values worth writing to each register (FIFO set-ups, DLAB, loopback...), else anything 32-bit. */
const INTERESTING: Readonly<Record<number, readonly number[]>> = {
  [UART_RBR]: [0x00, 0x41, 0xff, 12, 1],
  [UART_IER]: [0x00, 0x01, 0x02, 0x03, 0x05, 0x08, 0x0f, 0xff],
  [UART_IIR]: [0x00, 0x01, 0x03, 0x05, 0x07, 0x41, 0x81, 0xc1, 0xc7, 0x06, 0x02, 0x04],
  [UART_LCR]: [0x03, 0x83, 0x80, 0x00, 0x1b],
  [UART_MCR]: [0x00, 0x0b, 0x08, 0x03, 0x1f, 0x10, 0x17, 0x1b, 0x14, 0x0f],
  [UART_LSR]: [0x00, 0xff],
  [UART_MSR]: [0x00, 0xff],
  [UART_SCR]: [0x00, 0x55, 0xaa],
};

function opArb(loopback: boolean): fc.Arbitrary<Op> {
  const offsetArb = fc.integer({ min: 0, max: 7 });
  const writeArb = fc
    .record({ offset: offsetArb, size: sizeArb, pick: fc.nat(), random: fc.integer({ min: 0, max: 0xffffffff }), useRandom: fc.nat(4) })
    .map(({ offset, size, pick, random, useRandom }): Op => {
      const choices = INTERESTING[offset]!;
      let value = useRandom === 0 ? random : choices[pick % choices.length]!;
      if (!loopback && offset === UART_MCR) value &= ~MCR_LOOP;
      return { kind: 'write', offset, size, value };
    });
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('read' as const), offset: offsetArb, size: sizeArb }) },
    { weight: 6, arbitrary: writeArb },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('input' as const),
        bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 24 }),
        poll: fc.boolean(),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('backlog' as const),
        bytes: fc.constantFrom(0, 100, SERIAL_TX_BACKLOG_LIMIT - 1, SERIAL_TX_BACKLOG_LIMIT, 4 * SERIAL_TX_BACKLOG_LIMIT),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ kind: 'pollTx' as const }) },
    { weight: 1, arbitrary: fc.constantFrom({ kind: 'reset' as const }, { kind: 'snapshot' as const }) },
  );
}

/** The host side: input waiting to be taken, bytes transmitted, a backlog the fuzzer sets. */
class FuzzHost implements SerialHost {
  readonly waiting: number[] = [];
  readonly transmitted: number[] = [];
  backlog = 0;
  /** Told of every byte the UART takes, so the model follows the RX FIFO. */
  onReceive: (byte: number) => void = () => {};
  receiveAllowed = true;

  transmit(byte: number): void {
    same(Number.isInteger(byte) && byte >= 0 && byte <= BYTE_MASK, true);
    this.transmitted.push(byte);
  }

  txBacklog(): number {
    return this.backlog;
  }

  receive(): number {
    same(this.receiveAllowed, true, 'the UART took host input while in loopback');
    const byte = this.waiting.shift();
    if (byte === undefined) return -1;
    this.onReceive(byte);
    return byte;
  }
}

/** What the guest has programmed and what is in flight, kept independently of the UART. */
class Model {
  ier = 0;
  fcr = 0;
  lcr = 0;
  mcr = 0;
  scr = 0;
  dll = UART_DEFAULT_DIVISOR & BYTE_MASK;
  dlm = UART_DEFAULT_DIVISOR >>> 8;
  /** Host bytes the UART has taken and the guest has not read (outside loopback). */
  rx: number[] = [];
  rbr = 0;
  /** Every byte written to THR outside loopback, and those a reset threw away while held. */
  written: number[] = [];
  discarded = 0;
  /** txDropped of the UARTs replaced by snapshots. */
  droppedBefore = 0;
  /** Whether the RX FIFO's contents are known (not after loopback mixed bytes into it), and RBR's. */
  rxKnown = true;
  rbrKnown = true;
  /** Loopback has been on since LSR was last read: OE may be set. */
  mayOverrun = false;
  /** A THRE interrupt is owed: THR became empty (or ETBEI was enabled while it was) and nothing acknowledged it. */
  thrPending = false;

  get fifo(): boolean {
    return (this.fcr & FCR_FIFO_ENABLE) !== 0;
  }
  get loop(): boolean {
    return (this.mcr & MCR_LOOP) !== 0;
  }
  get dlab(): boolean {
    return (this.lcr & LCR_DLAB) !== 0;
  }
  capacity(): number {
    return this.fifo ? UART_FIFO_SIZE : 1;
  }

  reset(): void {
    Object.assign(this, { ier: 0, fcr: 0, lcr: 0, mcr: 0, scr: 0, dll: UART_DEFAULT_DIVISOR & BYTE_MASK, dlm: UART_DEFAULT_DIVISOR >>> 8 });
    this.rx = [];
    this.rbr = 0;
    this.rxKnown = this.rbrKnown = true;
    this.mayOverrun = this.thrPending = false;
  }

  writeFcr(byte: number): void {
    const enable = byte & FCR_FIFO_ENABLE;
    // Changing the enable bit empties both FIFOs; with FIFOs on, the reset bits empty one each.
    if (enable !== (this.fcr & FCR_FIFO_ENABLE) || (enable && byte & FCR_RX_FIFO_RESET)) {
      this.rx = [];
      this.rxKnown = true;
    }
    this.fcr = enable ? byte & (FCR_FIFO_ENABLE | 0x08 | 0xc0) : 0;
  }
}

/** A UART, its host and the model, and the IRQ line as the UART last drove it. */
class Rig {
  readonly host = new FuzzHost();
  readonly model = new Model();
  line = false;
  uart = this.newUart();

  constructor() {
    this.host.onReceive = (byte) => {
      if (!this.model.loop) this.model.rx.push(byte);
    };
  }

  /** A fresh UART on the same host (the line starts low, as a new device's does). */
  newUart(): Serial16550 {
    this.line = false;
    return new Serial16550(this.host, (level) => {
      holds(level !== this.line, 'the IRQ line was driven to the level it already had');
      this.line = level;
    });
  }
}

/** Whether an interrupt is pending, from the UART's own state: the line must follow it. */
function expectedLine(rig: Rig): boolean {
  const s = rig.uart.state();
  const pending =
    (s.ier & IER_ELSI && s.lsrErrors & LSR_ERROR_MASK) ||
    (s.ier & IER_ERBFI && s.rxFifo.length > 0) ||
    (s.ier & IER_ETBEI && s.thrIpending) ||
    (s.ier & IER_EDSSI && s.msrDeltas !== 0);
  return (s.mcr & (MCR_OUT2 | MCR_LOOP)) === MCR_OUT2 && Boolean(pending);
}

function checkIir(rig: Rig, iir: number): void {
  const { model } = rig;
  same(iir & ~BYTE_MASK, 0);
  same(iir & IIR_RESERVED, 0);
  same(iir & IIR_FIFO_ENABLED, model.fifo ? IIR_FIFO_ENABLED : 0);
  const id = iir & IIR_ID_MASK;
  holds(IIR_IDS.includes(id));
  const rxCount = rig.uart.state().rxFifo.length;
  if (id === IIR_RDI || id === IIR_CTI) {
    holds((model.ier & IER_ERBFI) !== 0);
    holds(rxCount > 0);
    const trigger = RX_TRIGGER_LEVELS[model.fcr >>> FCR_RX_TRIGGER_SHIFT]!;
    // Below the trigger level, data is reported as a character timeout (there is no clock to wait for).
    if (id === IIR_CTI) same(model.fifo && rxCount < trigger, true);
    else if (model.fifo) holds(rxCount >= trigger);
  }
  if (id === IIR_THRI) holds((model.ier & IER_ETBEI) !== 0);
  if (id === IIR_RLSI) holds((model.ier & IER_ELSI) !== 0);
  if (id === IIR_MSI) holds((model.ier & IER_EDSSI) !== 0);
  // Received data outranks THRE and modem status: with ERBFI and data, IIR must say so (or RLS).
  if (model.ier & IER_ERBFI && rxCount > 0) holds([IIR_RDI, IIR_CTI, IIR_RLSI].includes(id));
  if ((model.ier & IER_MASK) === 0) same(id, IIR_NO_INT);
}

function checkLsr(rig: Rig, lsr: number): void {
  const { model } = rig;
  const s = rig.uart.state();
  same(lsr & ~BYTE_MASK, 0);
  // No parity, framing or break errors on a virtual line.
  same(lsr & (LSR_PE | LSR_FE | LSR_BI | LSR_RX_FIFO_ERROR), 0);
  same(Boolean(lsr & LSR_DR), s.rxFifo.length > 0);
  if (model.rxKnown) same(Boolean(lsr & LSR_DR), model.rx.length > 0);
  // TEMT (all sent) implies THRE (holding register empty); held bytes clear both.
  if (lsr & LSR_TEMT) holds((lsr & LSR_THRE) !== 0);
  same(Boolean(lsr & LSR_THRE), s.txFifo.length === 0);
  // Overrun needs a receiver that can be overrun: only loopback feeds it faster than it is read.
  if (!model.mayOverrun) same(lsr & LSR_OE, 0);
  model.mayOverrun = model.loop;
}

function checkMsr(rig: Rig, msr: number): void {
  const { model } = rig;
  const lines = msr & ~MSR_DELTA_MASK;
  if (model.loop) {
    const m = model.mcr;
    const looped = (m & MCR_RTS ? MSR_CTS : 0) | (m & MCR_DTR ? MSR_DSR : 0) | (m & MCR_OUT1 ? MSR_RI : 0) | (m & MCR_OUT2 ? MSR_DCD : 0);
    same(lines, looped);
  } else {
    same(lines, MSR_LINES_CONNECTED);
  }
}

function read(rig: Rig, offset: number, size: PioSize): void {
  const { uart, model } = rig;
  const heldBefore = uart.state().txFifo.length;
  const value = uart.pioRead(offset, size);
  // Every access first lets held bytes go; THR is then empty, before the read itself (an IIR read may acknowledge it).
  if (heldBefore > 0 && uart.state().txFifo.length === 0) model.thrPending = true;
  same(Number.isInteger(value) && value >= 0 && value <= BYTE_MASK, true, `a ${size}-byte read of an 8-bit register gave ${value}`);
  switch (offset) {
    case UART_RBR:
      if (model.dlab) {
        same(value, model.dll);
        break;
      }
      if (!model.rxKnown) {
        model.rbrKnown = false;
        break;
      }
      // The UART tops its FIFO up before and after the read: the byte read is the oldest taken,
      // and with nothing taken RBR keeps its last byte.
      if (model.rx.length > 0) {
        model.rbr = model.rx.shift()!;
        model.rbrKnown = true;
      } else if (!model.rbrKnown) {
        model.rbr = value;
        model.rbrKnown = true;
      }
      same(value, model.rbr, 'RBR gave a byte other than the next host byte');
      break;
    case UART_IER:
      same(value, model.dlab ? model.dlm : model.ier);
      break;
    case UART_IIR:
      checkIir(rig, value);
      // Reading IIR acknowledges THRE, when that is what it reports.
      if ((value & IIR_ID_MASK) === IIR_THRI) model.thrPending = false;
      break;
    case UART_LCR:
      same(value, model.lcr);
      break;
    case UART_MCR:
      same(value, model.mcr);
      break;
    case UART_LSR:
      checkLsr(rig, value);
      break;
    case UART_MSR:
      checkMsr(rig, value);
      break;
    default:
      same(value, model.scr);
  }
}

function write(rig: Rig, offset: number, size: PioSize, value: number): void {
  const { uart, model, host } = rig;
  const byte = value & BYTE_MASK;
  const held = uart.state().txFifo.length;
  uart.pioWrite(offset, size, value);
  switch (offset) {
    case UART_RBR:
      if (model.dlab) {
        model.dll = byte;
        break;
      }
      // Writing THR acknowledges THRE; a byte that goes at once (to the host or looped back) leaves THR empty again.
      model.thrPending = uart.state().txFifo.length === 0;
      if (model.loop)
        model.rxKnown = false; // looped back into the RX FIFO
      else {
        model.written.push(byte);
        // A slow host holds bytes back; a fast one never makes the guest wait.
        if (host.backlog < SERIAL_TX_BACKLOG_LIMIT) {
          same(uart.state().txFifo.length, 0);
          same(host.transmitted.at(-1), byte);
        }
      }
      break;
    case UART_IER:
      if (model.dlab) {
        model.dlm = byte;
        break;
      }
      // Enabling ETBEI while THR is empty owes a THRE interrupt at once (Linux's UART probe counts on it).
      if (!(model.ier & IER_ETBEI) && byte & IER_ETBEI && uart.state().txFifo.length === 0) model.thrPending = true;
      model.ier = byte & IER_MASK;
      break;
    case UART_IIR:
      model.writeFcr(byte);
      if (byte & FCR_TX_FIFO_RESET && byte & FCR_FIFO_ENABLE) same(uart.state().txFifo.length, 0);
      break;
    case UART_LCR:
      model.lcr = byte;
      break;
    case UART_MCR: {
      const wasLoop = model.loop;
      model.mcr = byte & MCR_MASK;
      // Held bytes entering loopback are looped back: the RX FIFO is no longer host bytes only.
      if (!wasLoop && model.loop && held > 0) model.rxKnown = false;
      break;
    }
    case UART_SCR:
      model.scr = byte;
      break;
  }
}

function step(rig: Rig, op: Op): void {
  const { model, host } = rig;
  const heldBefore = rig.uart.state().txFifo.length;
  const thrWrite = op.kind === 'write' && op.offset === UART_RBR && !model.dlab;
  host.receiveAllowed = !model.loop;
  if (model.loop) model.mayOverrun = true;
  switch (op.kind) {
    case 'read':
      read(rig, op.offset, op.size);
      break;
    case 'write':
      write(rig, op.offset, op.size, op.value);
      break;
    case 'input':
      host.waiting.push(...op.bytes);
      if (op.poll) rig.uart.pollRx();
      break;
    case 'backlog':
      host.backlog = op.bytes;
      break;
    case 'pollTx':
      rig.uart.pollTx();
      break;
    case 'reset':
      model.discarded += rig.uart.state().txFifo.length;
      rig.uart.reset();
      model.reset();
      break;
    case 'snapshot': {
      const saved = JSON.parse(JSON.stringify(rig.uart.state())) as ReturnType<Serial16550['state']>;
      model.droppedBefore += rig.uart.txDropped;
      rig.uart = rig.newUart();
      rig.uart.restore(saved);
      expect(rig.uart.state()).toEqual(saved);
      break;
    }
  }
  host.receiveAllowed = true;
  const s = rig.uart.state();
  // Held bytes that all went (drained, looped back or discarded by a FIFO reset) leave THR empty.
  const handled = thrWrite || op.kind === 'read' || op.kind === 'reset' || op.kind === 'snapshot';
  if (heldBefore > 0 && s.txFifo.length === 0 && !handled) model.thrPending = true;
  same(s.thrIpending, model.thrPending, 'THRE interrupt pending');
  holds(s.rxFifo.length <= model.capacity());
  holds(s.txFifo.length <= model.capacity());
  if (model.rxKnown) sameList(s.rxFifo, model.rx, 'the RX FIFO holds other bytes than the host gave');
  same(rig.uart.irqLevel, rig.line);
  same(rig.line, expectedLine(rig), 'the IRQ line does not follow the pending interrupts');
}

/** THR bytes: delivered in order, held, dropped or discarded by a reset; none invented, none lost. */
function checkTransmitted(rig: Rig): void {
  const { model, host, uart } = rig;
  const held = uart.state().txFifo;
  const dropped = model.droppedBefore + uart.txDropped;
  same(host.transmitted.length + held.length + dropped + model.discarded, model.written.length);
  // transmitted, then held, is a subsequence of written (drops skip bytes, never reorder them).
  let at = 0;
  for (const byte of [...host.transmitted, ...held]) {
    while (at < model.written.length && model.written[at] !== byte) at++;
    holds(at < model.written.length, 'a transmitted byte is out of order or was never written');
    at++;
  }
}

function run(ops: Op[]): Rig {
  const rig = new Rig();
  for (const op of ops) step(rig, op);
  return rig;
}

describe('16550A fuzzing', () => {
  it(
    'outside loopback: every host byte reaches RBR once, in order; every THR byte is accounted for',
    () =>
      fuzz(
        fc.array(opArb(false), { maxLength: 300, size: 'max' }),
        (ops) => {
          const rig = run(ops);
          expect(rig.model.rxKnown).toBe(true);
          checkTransmitted(rig);
          // Bytes left host-side were not lost: they are still waiting, in order, after those taken.
          const offered = ops.flatMap((op) => (op.kind === 'input' ? op.bytes : []));
          expect(offered.slice(offered.length - rig.host.waiting.length)).toEqual(rig.host.waiting);
        },
        300,
      ),
    FUZZ_TIMEOUT_MS,
  );

  it(
    'with loopback: FIFO bounds, IIR/LSR/MSR consistency and the IRQ line hold, and nothing throws',
    () =>
      fuzz(
        fc.array(opArb(true), { maxLength: 300, size: 'max' }),
        (ops) => {
          const rig = run(ops);
          const s = rig.uart.state();
          expect(s.rxFifo.length + s.txFifo.length).toBeLessThanOrEqual(2 * UART_FIFO_SIZE);
        },
        300,
      ),
    FUZZ_TIMEOUT_MS,
  );

  // Cases the fuzzer found, kept as plain tests.
  it('raises the receive interrupt for a byte an LSR read takes from the host', () => {
    const rig = new Rig();
    rig.uart.pioWrite(UART_MCR, 1, MCR_OUT2 | MCR_RTS | MCR_DTR);
    rig.uart.pioWrite(UART_IER, 1, IER_ERBFI);
    rig.host.waiting.push(0x41);
    // Polling LSR (for THRE, say) takes the byte into the FIFO: the guest may now halt waiting
    // for the interrupt, and the machine's pollRx() finds nothing new to announce.
    expect(rig.uart.pioRead(UART_LSR, 1) & LSR_DR).toBe(LSR_DR);
    rig.uart.pollRx();
    expect(rig.line).toBe(true);
  });
});
