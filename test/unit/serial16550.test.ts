import { beforeEach, describe, expect, it } from 'vitest';
import {
  FCR_FIFO_ENABLE,
  FCR_RX_FIFO_RESET,
  FCR_RX_TRIGGER_1,
  FCR_RX_TRIGGER_14,
  FCR_RX_TRIGGER_4,
  FCR_RX_TRIGGER_8,
  FCR_TX_FIFO_RESET,
  IER_EDSSI,
  IER_ELSI,
  IER_ERBFI,
  IER_ETBEI,
  IIR_CTI,
  IIR_FIFO_ENABLED,
  IIR_MSI,
  IIR_NO_INT,
  IIR_RDI,
  IIR_RLSI,
  IIR_THRI,
  LCR_DLAB,
  LSR_DR,
  LSR_OE,
  LSR_TEMT,
  LSR_THRE,
  MCR_DTR,
  MCR_LOOP,
  MCR_OUT1,
  MCR_OUT2,
  MCR_RTS,
  MSR_CTS,
  MSR_DCD,
  MSR_DCTS,
  MSR_DDCD,
  MSR_DDSR,
  MSR_DSR,
  MSR_RI,
  MSR_TERI,
  SERIAL_TX_BACKLOG_LIMIT,
  Serial16550,
  type SerialHost,
  UART_DEFAULT_DIVISOR,
  UART_DLL,
  UART_DLM,
  UART_FCR,
  UART_IER,
  UART_IIR,
  UART_LCR,
  UART_LSR,
  UART_MCR,
  UART_MSR,
  UART_RBR,
  UART_SCR,
  UART_THR,
} from '../../src/devices/serial16550.js';

/** A host whose backlog the test sets and whose input the test queues. */
class FakeHost implements SerialHost {
  sent: number[] = [];
  backlog = 0;
  input: number[] = [];
  receives = 0;
  transmit(byte: number): void {
    this.sent.push(byte);
  }
  txBacklog(): number {
    return this.backlog;
  }
  receive(): number {
    this.receives++;
    return this.input.shift() ?? -1;
  }
}

let host: FakeHost;
let uart: Serial16550;
let irqs: boolean[];

const rd = (reg: number): number => uart.pioRead(reg, 1);
const wr = (reg: number, value: number): void => uart.pioWrite(reg, 1, value);
const iirId = (): number => rd(UART_IIR) & 0x0f;

beforeEach(() => {
  host = new FakeHost();
  irqs = [];
  uart = new Serial16550(host, (level) => irqs.push(level));
});

describe('Serial16550 reset state', () => {
  it('matches the data sheet master-reset column', () => {
    expect(rd(UART_IER)).toBe(0);
    expect(rd(UART_IIR)).toBe(IIR_NO_INT);
    expect(rd(UART_LCR)).toBe(0);
    expect(rd(UART_MCR)).toBe(0);
    expect(rd(UART_LSR)).toBe(LSR_THRE | LSR_TEMT);
    expect(rd(UART_LSR)).toBe(0x60);
    expect(rd(UART_MSR)).toBe(0xb0); // DCD|DSR|CTS, no deltas
    expect(rd(UART_SCR)).toBe(0);
    expect(rd(UART_RBR)).toBe(0);
    wr(UART_LCR, LCR_DLAB);
    expect(rd(UART_DLL) | (rd(UART_DLM) << 8)).toBe(UART_DEFAULT_DIVISOR);
    expect(irqs).toEqual([]);
    expect(uart.irqLevel).toBe(false);
  });

  it('reset() returns to the same state', () => {
    wr(UART_IER, 0x0f);
    wr(UART_MCR, MCR_LOOP | MCR_OUT2);
    wr(UART_THR, 0x41);
    wr(UART_SCR, 0x5a);
    wr(UART_LCR, 0x83);
    uart.reset();
    expect(rd(UART_LCR)).toBe(0);
    expect(rd(UART_IER)).toBe(0);
    expect(rd(UART_MCR)).toBe(0);
    expect(rd(UART_LSR)).toBe(0x60);
    expect(rd(UART_MSR)).toBe(0xb0);
    expect(rd(UART_SCR)).toBe(0);
    expect(rd(UART_IIR)).toBe(IIR_NO_INT);
  });
});

describe('Serial16550 registers', () => {
  it('switches offsets 0 and 1 to the divisor latch with DLAB, which reads back', () => {
    wr(UART_IER, 0x05);
    wr(UART_LCR, LCR_DLAB | 0x03);
    expect(rd(UART_LCR)).toBe(0x83);
    wr(UART_DLL, 0x01);
    wr(UART_DLM, 0x02);
    expect(rd(UART_DLL)).toBe(0x01);
    expect(rd(UART_DLM)).toBe(0x02);
    expect(host.sent).toEqual([]); // a DLL write is not a THR write
    wr(UART_LCR, 0x03);
    expect(rd(UART_IER)).toBe(0x05); // IER was untouched by the DLM write
    wr(UART_THR, 0x41);
    expect(host.sent).toEqual([0x41]);
    wr(UART_LCR, LCR_DLAB);
    expect(rd(UART_DLL)).toBe(0x01); // THR write did not touch DLL
    expect(rd(UART_DLM)).toBe(0x02);
  });

  it('keeps only the low 4 bits of IER', () => {
    wr(UART_IER, 0xff);
    expect(rd(UART_IER)).toBe(0x0f);
    wr(UART_IER, 0xa5);
    expect(rd(UART_IER)).toBe(0x05);
  });

  it('reads back LCR and SCR in full', () => {
    for (const v of [0x00, 0x1b, 0x7f]) {
      wr(UART_LCR, v);
      expect(rd(UART_LCR)).toBe(v);
    }
    for (const v of [0x00, 0x55, 0xaa, 0xff]) {
      wr(UART_SCR, v);
      expect(rd(UART_SCR)).toBe(v);
    }
  });

  it('keeps only the low 5 bits of MCR', () => {
    wr(UART_MCR, 0xef);
    expect(rd(UART_MCR)).toBe(0x0f);
    wr(UART_MCR, 0xff);
    expect(rd(UART_MCR)).toBe(0x1f);
  });

  it('ignores writes to LSR and MSR', () => {
    wr(UART_LSR, 0x00);
    wr(UART_MSR, 0x00);
    expect(rd(UART_LSR)).toBe(0x60);
    expect(rd(UART_MSR)).toBe(0xb0);
  });

  it('shows FIFO mode in IIR bits 6-7 and clears the FIFOs on request', () => {
    wr(UART_FCR, FCR_FIFO_ENABLE);
    expect(rd(UART_IIR)).toBe(IIR_FIFO_ENABLED | IIR_NO_INT);
    wr(UART_FCR, 0);
    expect(rd(UART_IIR)).toBe(IIR_NO_INT);

    wr(UART_FCR, FCR_FIFO_ENABLE);
    wr(UART_MCR, MCR_LOOP);
    for (let i = 0; i < 5; i++) wr(UART_THR, 0x30 + i);
    expect(rd(UART_LSR) & LSR_DR).toBe(LSR_DR);
    wr(UART_FCR, FCR_FIFO_ENABLE | FCR_RX_FIFO_RESET);
    expect(rd(UART_LSR) & LSR_DR).toBe(0);
    expect(rd(UART_IIR)).toBe(IIR_FIFO_ENABLED | IIR_NO_INT); // reset bits self-clear, FIFO stays on

    // Disabling the FIFOs empties them too.
    wr(UART_THR, 0x41);
    wr(UART_FCR, 0);
    expect(rd(UART_LSR) & LSR_DR).toBe(0);
  });

  it('ignores FIFO resets written without FIFO enable (data sheet: FCR0 must be set)', () => {
    wr(UART_MCR, MCR_LOOP);
    wr(UART_THR, 0x41); // 16450 mode: one byte in RBR
    wr(UART_FCR, FCR_RX_FIFO_RESET | FCR_TX_FIFO_RESET);
    expect(rd(UART_LSR) & LSR_DR).toBe(LSR_DR);
    expect(rd(UART_RBR)).toBe(0x41);
  });

  it('treats 2- and 4-byte accesses as byte accesses to the low byte', () => {
    uart.pioWrite(UART_SCR, 2, 0x1234);
    expect(uart.pioRead(UART_SCR, 2)).toBe(0x34);
    expect(uart.pioRead(UART_LSR, 4)).toBe(0x60);
    uart.pioWrite(UART_THR, 4, 0xabcdef42);
    expect(host.sent).toEqual([0x42]);
  });
});

describe('Serial16550 loopback', () => {
  it('sends THR to RBR and nothing to the host', () => {
    wr(UART_MCR, MCR_LOOP);
    wr(UART_THR, 0x41);
    expect(host.sent).toEqual([]);
    expect(rd(UART_LSR)).toBe(LSR_DR | LSR_THRE | LSR_TEMT);
    expect(rd(UART_RBR)).toBe(0x41);
    expect(rd(UART_LSR)).toBe(LSR_THRE | LSR_TEMT);
    // RBR when empty returns the last byte read, with DR clear.
    expect(rd(UART_RBR)).toBe(0x41);
    expect(rd(UART_LSR) & LSR_DR).toBe(0);
  });

  it('does not read host input while in loopback', () => {
    host.input.push(0x61);
    wr(UART_MCR, MCR_LOOP);
    expect(rd(UART_LSR) & LSR_DR).toBe(0);
    wr(UART_THR, 0x41);
    expect(rd(UART_RBR)).toBe(0x41);
    wr(UART_MCR, 0);
    expect(rd(UART_RBR)).toBe(0x61);
  });

  it('mirrors MCR in MSR with delta bits that clear on read', () => {
    // Entering loopback with every output off drops CTS, DSR and DCD.
    wr(UART_MCR, MCR_LOOP);
    expect(rd(UART_MSR)).toBe(MSR_DCTS | MSR_DDSR | MSR_DDCD);
    expect(rd(UART_MSR)).toBe(0x00);

    wr(UART_MCR, MCR_LOOP | MCR_RTS);
    expect(rd(UART_MSR)).toBe(MSR_CTS | MSR_DCTS);
    wr(UART_MCR, MCR_LOOP | MCR_RTS | MCR_DTR);
    expect(rd(UART_MSR)).toBe(MSR_CTS | MSR_DSR | MSR_DDSR);
    wr(UART_MCR, MCR_LOOP | MCR_OUT2);
    expect(rd(UART_MSR)).toBe(MSR_DCD | MSR_DDCD | MSR_DCTS | MSR_DDSR);
    expect(rd(UART_MSR)).toBe(MSR_DCD);

    // RI: the leading edge sets no delta; the trailing edge sets TERI.
    wr(UART_MCR, MCR_LOOP | MCR_OUT1);
    expect(rd(UART_MSR)).toBe(MSR_RI | MSR_DDCD);
    wr(UART_MCR, MCR_LOOP);
    expect(rd(UART_MSR)).toBe(MSR_TERI);
    expect(rd(UART_MSR)).toBe(0);

    // The classic probe: LOOP|OUT2|RTS reads back 0x90 in the upper nibble.
    wr(UART_MCR, MCR_LOOP | MCR_OUT2 | MCR_RTS);
    expect(rd(UART_MSR) & 0xf0).toBe(0x90);

    // Leaving loopback reconnects the inputs: back to DCD|DSR|CTS (with the DSR change as a delta).
    wr(UART_MCR, 0);
    expect(rd(UART_MSR)).toBe(0xb0 | MSR_DDSR);
    expect(rd(UART_MSR)).toBe(0xb0);
  });

  it('shows DCD|DSR|CTS outside loopback whatever MCR holds', () => {
    for (const mcr of [0, MCR_DTR, MCR_RTS, MCR_OUT1, MCR_OUT2, 0x0f]) {
      wr(UART_MCR, mcr);
      expect(rd(UART_MSR)).toBe(0xb0);
    }
  });

  it('sets OE on overrun, keeps the first bytes, and clears OE when LSR is read', () => {
    wr(UART_FCR, FCR_FIFO_ENABLE);
    wr(UART_MCR, MCR_LOOP);
    for (let i = 0; i < 17; i++) wr(UART_THR, i);
    expect(rd(UART_LSR)).toBe(LSR_DR | LSR_OE | LSR_THRE | LSR_TEMT);
    expect(rd(UART_LSR)).toBe(LSR_DR | LSR_THRE | LSR_TEMT);
    const got: number[] = [];
    while (rd(UART_LSR) & LSR_DR) got.push(rd(UART_RBR));
    expect(got).toEqual([...Array(16).keys()]); // byte 16 was lost
  });

  it('without FIFOs, an overrun overwrites RBR (16450 behaviour)', () => {
    wr(UART_MCR, MCR_LOOP);
    wr(UART_THR, 0x41);
    wr(UART_THR, 0x42);
    expect(rd(UART_LSR)).toBe(LSR_DR | LSR_OE | LSR_THRE | LSR_TEMT);
    expect(rd(UART_RBR)).toBe(0x42);
    expect(rd(UART_LSR)).toBe(LSR_THRE | LSR_TEMT);
  });
});

describe('Serial16550 receive', () => {
  it('delivers more than 16 bytes of input in order without losing any', () => {
    wr(UART_FCR, FCR_FIFO_ENABLE);
    const input = Array.from({ length: 100 }, (_, i) => (i * 7) & 0xff);
    host.input.push(...input);
    expect(rd(UART_LSR) & LSR_DR).toBe(LSR_DR);
    expect(host.input).toHaveLength(100 - 16); // the FIFO took 16, the rest waits host-side
    const got: number[] = [];
    while (rd(UART_LSR) & LSR_DR) {
      got.push(rd(UART_RBR));
      expect(rd(UART_LSR) & LSR_OE).toBe(0);
    }
    expect(got).toEqual(input);
  });

  it('holds one byte at a time without FIFOs, still losing nothing', () => {
    host.input.push(1, 2, 3);
    expect(rd(UART_LSR) & LSR_DR).toBe(LSR_DR);
    expect(host.input).toEqual([2, 3]);
    expect([rd(UART_RBR), rd(UART_RBR), rd(UART_RBR)]).toEqual([1, 2, 3]);
    expect(rd(UART_LSR) & (LSR_DR | LSR_OE)).toBe(0);
  });

  it('refills on RBR, IIR and pollRx (with ERBFI), but not on other registers', () => {
    wr(UART_FCR, FCR_FIFO_ENABLE);
    host.input.push(0x61);
    rd(UART_SCR);
    rd(UART_MSR);
    expect(host.input).toHaveLength(1);
    rd(UART_IIR);
    expect(host.input).toHaveLength(0);
    host.input.push(0x62);
    // Without the receive interrupt enabled, new input waits host-side until the guest looks.
    uart.pollRx();
    expect(host.input).toHaveLength(1);
    wr(UART_IER, IER_ERBFI);
    uart.pollRx();
    expect(host.input).toHaveLength(0);
    host.input.push(0x63);
    expect([rd(UART_RBR), rd(UART_RBR), rd(UART_RBR)]).toEqual([0x61, 0x62, 0x63]);
  });

  it('reads RBR as 0 with DR clear before any input', () => {
    expect(rd(UART_RBR)).toBe(0);
    expect(rd(UART_LSR) & LSR_DR).toBe(0);
  });
});

describe('Serial16550 transmit and the host backlog', () => {
  it('passes bytes straight through while the backlog is under the limit', () => {
    for (const b of [0x48, 0x69, 0x0a, 0x00, 0xff]) wr(UART_THR, b);
    expect(host.sent).toEqual([0x48, 0x69, 0x0a, 0x00, 0xff]);
    expect(rd(UART_LSR)).toBe(LSR_THRE | LSR_TEMT);
    host.backlog = SERIAL_TX_BACKLOG_LIMIT - 1;
    wr(UART_THR, 0x21);
    expect(host.sent.at(-1)).toBe(0x21);
    expect(rd(UART_LSR) & (LSR_THRE | LSR_TEMT)).toBe(LSR_THRE | LSR_TEMT);
  });

  it('holds bytes in the 16-byte TX FIFO at the limit, drops the overflow, and delivers in order', () => {
    wr(UART_FCR, FCR_FIFO_ENABLE);
    wr(UART_THR, 0x01);
    host.backlog = SERIAL_TX_BACKLOG_LIMIT;
    wr(UART_THR, 0x02);
    expect(host.sent).toEqual([0x01]);
    expect(rd(UART_LSR) & (LSR_THRE | LSR_TEMT)).toBe(0);
    for (let i = 3; i < 20; i++) wr(UART_THR, i); // 15 more fit (0x02..0x11), 2 are dropped
    expect(uart.txDropped).toBe(2);
    expect(host.sent).toEqual([0x01]);

    host.backlog = 0;
    expect(rd(UART_LSR)).toBe(LSR_THRE | LSR_TEMT); // reading LSR moves the held bytes
    expect(host.sent).toEqual([0x01, ...Array.from({ length: 16 }, (_, i) => i + 2)]);
    wr(UART_THR, 0x40);
    expect(host.sent.at(-1)).toBe(0x40);
  });

  it('delivers held bytes before a new byte, as far as the backlog allows', () => {
    wr(UART_FCR, FCR_FIFO_ENABLE);
    host.backlog = SERIAL_TX_BACKLOG_LIMIT;
    wr(UART_THR, 0x61);
    wr(UART_THR, 0x62);
    // The host drains a little: room for exactly one more byte.
    let room = 1;
    host.txBacklog = () => (room > 0 ? SERIAL_TX_BACKLOG_LIMIT - 1 : SERIAL_TX_BACKLOG_LIMIT);
    host.transmit = (b) => {
      host.sent.push(b);
      room--;
    };
    wr(UART_THR, 0x63);
    expect(host.sent).toEqual([0x61]);
    expect(rd(UART_LSR) & LSR_THRE).toBe(0);
    room = 100;
    uart.pollTx();
    expect(host.sent).toEqual([0x61, 0x62, 0x63]);
    expect(rd(UART_LSR) & LSR_THRE).toBe(LSR_THRE);
  });

  it('holds a single byte in THR when the FIFOs are off', () => {
    host.backlog = SERIAL_TX_BACKLOG_LIMIT;
    wr(UART_THR, 0x61);
    wr(UART_THR, 0x62);
    expect(uart.txDropped).toBe(1);
    expect(rd(UART_LSR) & (LSR_THRE | LSR_TEMT)).toBe(0);
    host.backlog = 0;
    uart.pollTx();
    expect(host.sent).toEqual([0x61]);
    expect(rd(UART_LSR) & (LSR_THRE | LSR_TEMT)).toBe(LSR_THRE | LSR_TEMT);
  });

  it('discards held bytes on a TX FIFO reset and counts them as dropped', () => {
    wr(UART_FCR, FCR_FIFO_ENABLE);
    host.backlog = SERIAL_TX_BACKLOG_LIMIT;
    wr(UART_THR, 0x61);
    wr(UART_THR, 0x62);
    wr(UART_FCR, FCR_FIFO_ENABLE | FCR_TX_FIFO_RESET);
    expect(uart.txDropped).toBe(2);
    expect(rd(UART_LSR) & (LSR_THRE | LSR_TEMT)).toBe(LSR_THRE | LSR_TEMT);
    host.backlog = 0;
    uart.pollTx();
    expect(host.sent).toEqual([]);
  });

  it('does not consult the host backlog when nothing is held', () => {
    let calls = 0;
    host.txBacklog = () => {
      calls++;
      return 0;
    };
    rd(UART_LSR);
    rd(UART_LSR);
    uart.pollTx();
    expect(calls).toBe(0);
  });
});

describe('Serial16550 interrupts', () => {
  const enableLine = (): void => wr(UART_MCR, MCR_OUT2);

  it('raises THRE when ETBEI is enabled while THR is empty; reading IIR clears it', () => {
    enableLine();
    wr(UART_IER, IER_ETBEI);
    expect(irqs).toEqual([true]);
    expect(rd(UART_IIR)).toBe(IIR_THRI);
    expect(irqs).toEqual([true, false]);
    expect(rd(UART_IIR)).toBe(IIR_NO_INT);
    // Re-writing IER with ETBEI still set is not a 0→1 edge.
    wr(UART_IER, IER_ETBEI);
    expect(rd(UART_IIR)).toBe(IIR_NO_INT);
    // Clearing and setting it again is.
    wr(UART_IER, 0);
    wr(UART_IER, IER_ETBEI);
    expect(rd(UART_IIR)).toBe(IIR_THRI);
  });

  it('re-raises THRE after each THR write, with a falling edge in between', () => {
    enableLine();
    wr(UART_IER, IER_ETBEI);
    irqs.length = 0;
    wr(UART_THR, 0x41); // clears THRE interrupt, byte leaves at once, THR empty again
    expect(irqs).toEqual([false, true]);
    expect(rd(UART_IIR)).toBe(IIR_THRI);
    expect(irqs).toEqual([false, true, false]);
  });

  it('raises THRE when held bytes drain, not while they are held', () => {
    enableLine();
    wr(UART_FCR, FCR_FIFO_ENABLE);
    host.backlog = SERIAL_TX_BACKLOG_LIMIT;
    wr(UART_IER, IER_ETBEI);
    rd(UART_IIR); // acknowledge the enable interrupt
    irqs.length = 0;
    wr(UART_THR, 0x41);
    expect(irqs).toEqual([]);
    expect(rd(UART_IIR) & 0x0f).toBe(IIR_NO_INT);
    host.backlog = 0;
    uart.pollTx();
    expect(irqs).toEqual([true]);
    expect(rd(UART_IIR) & 0x0f).toBe(IIR_THRI);
  });

  it('reports received data without FIFOs, cleared by reading RBR', () => {
    enableLine();
    wr(UART_IER, IER_ERBFI);
    host.input.push(0x61);
    uart.pollRx();
    expect(irqs).toEqual([true]);
    expect(iirId()).toBe(IIR_RDI);
    expect(rd(UART_RBR)).toBe(0x61);
    expect(irqs).toEqual([true, false]);
    expect(iirId()).toBe(IIR_NO_INT);
  });

  it('with FIFOs, reports RDA at the trigger level and timeout below it', () => {
    enableLine();
    wr(UART_FCR, FCR_FIFO_ENABLE | FCR_RX_TRIGGER_4);
    wr(UART_IER, IER_ERBFI);
    host.input.push(1, 2, 3);
    uart.pollRx();
    expect(rd(UART_IIR)).toBe(IIR_FIFO_ENABLED | IIR_CTI);
    host.input.push(4);
    expect(rd(UART_IIR)).toBe(IIR_FIFO_ENABLED | IIR_RDI);
    rd(UART_RBR);
    expect(iirId()).toBe(IIR_CTI);
    rd(UART_RBR);
    rd(UART_RBR);
    rd(UART_RBR);
    expect(iirId()).toBe(IIR_NO_INT);
    expect(irqs).toEqual([true, false]);
  });

  it('uses trigger levels 1, 4, 8 and 14', () => {
    wr(UART_IER, IER_ERBFI);
    const cases: [number, number][] = [
      [FCR_RX_TRIGGER_1, 1],
      [FCR_RX_TRIGGER_4, 4],
      [FCR_RX_TRIGGER_8, 8],
      [FCR_RX_TRIGGER_14, 14],
    ];
    for (const [bits, level] of cases) {
      wr(UART_FCR, FCR_FIFO_ENABLE | FCR_RX_FIFO_RESET | bits);
      host.input.push(...Array.from({ length: level - 1 }, () => 0x55));
      uart.pollRx();
      if (level > 1) expect(iirId()).toBe(IIR_CTI);
      host.input.push(0x55);
      expect(iirId()).toBe(IIR_RDI);
    }
  });

  it('reports receiver line status (OE) above everything else, cleared by reading LSR', () => {
    wr(UART_FCR, FCR_FIFO_ENABLE);
    wr(UART_MCR, MCR_LOOP);
    wr(UART_IER, IER_ELSI | IER_ERBFI | IER_ETBEI | IER_EDSSI);
    for (let i = 0; i < 17; i++) wr(UART_THR, i);
    expect(iirId()).toBe(IIR_RLSI);
    expect(rd(UART_LSR) & LSR_OE).toBe(LSR_OE);
    expect(iirId()).toBe(IIR_RDI); // 16 bytes ≥ trigger level 1
    // In loopback the line to the PIC stays low (OUT2 is looped to DCD, not to the IRQ gate).
    expect(irqs).toEqual([]);
  });

  it('orders RLS > RDA > THRE > MSI', () => {
    wr(UART_MCR, MCR_LOOP);
    wr(UART_IER, IER_ELSI | IER_ERBFI | IER_ETBEI | IER_EDSSI);
    // Now pending: MSI (deltas from entering loopback), THRE (ETBEI enable), RDA after a write,
    // RLS after an overrun.
    wr(UART_THR, 0x41);
    wr(UART_THR, 0x42); // overrun in 16450 mode
    expect(iirId()).toBe(IIR_RLSI);
    rd(UART_LSR);
    expect(iirId()).toBe(IIR_RDI);
    rd(UART_RBR);
    expect(iirId()).toBe(IIR_THRI); // this read acknowledges THRE
    expect(iirId()).toBe(IIR_MSI);
    rd(UART_MSR);
    expect(iirId()).toBe(IIR_NO_INT);
  });

  it('reports modem status changes when EDSSI is set, cleared by reading MSR', () => {
    wr(UART_IER, IER_EDSSI);
    wr(UART_MCR, MCR_OUT2);
    expect(iirId()).toBe(IIR_NO_INT); // outside loopback the inputs never change
    wr(UART_MCR, MCR_LOOP | MCR_OUT2);
    expect(iirId()).toBe(IIR_MSI);
    rd(UART_MSR);
    expect(iirId()).toBe(IIR_NO_INT);
  });

  it('masks each source with its IER bit', () => {
    wr(UART_MCR, MCR_LOOP);
    wr(UART_THR, 0x41);
    wr(UART_THR, 0x42);
    expect(iirId()).toBe(IIR_NO_INT); // OE, DR, THRE and MSR deltas are all there, none enabled
  });

  it('drives the IRQ line only while OUT2 is set, and only on level changes', () => {
    wr(UART_IER, IER_ERBFI);
    host.input.push(0x61);
    uart.pollRx();
    expect(irqs).toEqual([]); // pending, but OUT2 gates it off
    expect(iirId()).toBe(IIR_RDI);
    wr(UART_MCR, MCR_OUT2);
    expect(irqs).toEqual([true]);
    expect(uart.irqLevel).toBe(true);
    wr(UART_SCR, 1);
    wr(UART_MCR, MCR_OUT2 | MCR_DTR);
    expect(irqs).toEqual([true]);
    wr(UART_MCR, 0);
    expect(irqs).toEqual([true, false]);
    wr(UART_MCR, MCR_OUT2);
    rd(UART_RBR);
    expect(irqs).toEqual([true, false, true, false]);
    expect(uart.irqLevel).toBe(false);
  });

  it('lowers the line when the source is disabled in IER', () => {
    enableLine();
    host.input.push(0x61);
    wr(UART_IER, IER_ERBFI);
    uart.pollRx();
    expect(irqs).toEqual([true]);
    wr(UART_IER, 0);
    expect(irqs).toEqual([true, false]);
  });

  it('works without an irq callback', () => {
    const quiet = new Serial16550(host);
    quiet.pioWrite(UART_MCR, 1, MCR_OUT2);
    quiet.pioWrite(UART_IER, 1, IER_ETBEI);
    expect(quiet.irqLevel).toBe(true);
    expect(quiet.pioRead(UART_IIR, 1)).toBe(IIR_THRI);
    expect(quiet.irqLevel).toBe(false);
  });
});
