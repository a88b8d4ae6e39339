/**
 * Device state for snapshots: a device restored from another's state() behaves identically to it
 * from then on — same register reads, same bytes to the host, same interrupt line — whatever
 * the guest did before and does after (fast-check drives both with random register accesses).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DebugExit } from '../../src/devices/debug-exit.js';
import type { PioSize } from '../../src/devices/device.js';
import { FW_CFG_FILE_DIR, FW_CFG_IO_SIZE, FW_CFG_SIGNATURE, FwCfg, type FwCfgConfig } from '../../src/devices/fw-cfg.js';
import {
  FCR_FIFO_ENABLE,
  IER_ERBFI,
  IER_ETBEI,
  LSR_THRE,
  MCR_LOOP,
  MCR_OUT2,
  SERIAL_TX_BACKLOG_LIMIT,
  Serial16550,
  type Serial16550State,
  type SerialHost,
  UART_FCR,
  UART_IER,
  UART_LSR,
  UART_MCR,
  UART_RBR,
  UART_REGISTER_COUNT,
  UART_THR,
} from '../../src/devices/serial16550.js';

/** A host that records what the UART sends and feeds it queued input; the test controls the backlog. */
class RecordingHost implements SerialHost {
  sent: number[] = [];
  input: number[] = [];
  backlog = 0;
  transmit(byte: number): void {
    this.sent.push(byte);
  }
  txBacklog(): number {
    return this.backlog;
  }
  receive(): number {
    return this.input.shift() ?? -1;
  }
}

/** One thing that can happen to a UART: a guest access, host input arriving, the host backlog changing. */
type UartOp =
  | { kind: 'read'; offset: number }
  | { kind: 'write'; offset: number; value: number }
  | { kind: 'input'; bytes: number[] }
  | { kind: 'backlog'; full: boolean }
  | { kind: 'pollRx' }
  | { kind: 'pollTx' };

const uartOp: fc.Arbitrary<UartOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('read' as const), offset: fc.integer({ min: 0, max: UART_REGISTER_COUNT - 1 }) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      offset: fc.integer({ min: 0, max: UART_REGISTER_COUNT - 1 }),
      // Bias towards the values that change modes: FIFO enable, loopback, OUT2, interrupt enables.
      value: fc.oneof(
        fc.integer({ min: 0, max: 0xff }),
        fc.constantFrom(FCR_FIFO_ENABLE | 0xc0, MCR_LOOP | MCR_OUT2, MCR_OUT2, IER_ERBFI | IER_ETBEI, 0x80, 0x03),
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('input' as const), bytes: fc.array(fc.integer({ min: 0, max: 0xff }), { maxLength: 20 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('backlog' as const), full: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('pollRx' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('pollTx' as const) }) },
);

interface Uart {
  uart: Serial16550;
  host: RecordingHost;
  irq: boolean[];
}

function newUart(): Uart {
  const host = new RecordingHost();
  const irq: boolean[] = [];
  return { uart: new Serial16550(host, (level) => irq.push(level)), host, irq };
}

/** Applies `op`; returns what the guest saw (a read's value), if anything. */
function apply({ uart, host }: Uart, op: UartOp): number | undefined {
  switch (op.kind) {
    case 'read':
      return uart.pioRead(op.offset, 1);
    case 'write':
      uart.pioWrite(op.offset, 1, op.value);
      return undefined;
    case 'input':
      host.input.push(...op.bytes);
      return undefined;
    case 'backlog':
      host.backlog = op.full ? SERIAL_TX_BACKLOG_LIMIT : 0;
      return undefined;
    case 'pollRx':
      uart.pollRx();
      return undefined;
    case 'pollTx':
      uart.pollTx();
      return undefined;
  }
}

describe('Serial16550 state/restore', () => {
  it('a UART restored from state() behaves like the original from then on', () => {
    fc.assert(
      fc.property(fc.array(uartOp, { maxLength: 60 }), fc.array(uartOp, { maxLength: 60 }), (before, after) => {
        const a = newUart();
        for (const op of before) apply(a, op);
        const state = a.uart.state();
        // Through JSON, as a snapshot file carries it.
        const b = newUart();
        b.host.input = [...a.host.input];
        b.host.backlog = a.host.backlog;
        b.uart.restore(JSON.parse(JSON.stringify(state)) as Serial16550State);
        expect(b.uart.state()).toEqual(state);
        expect(b.uart.irqLevel).toBe(a.uart.irqLevel);
        const sentBefore = a.host.sent.length;
        const irqBefore = a.irq.length;
        for (const op of after) {
          expect(apply(b, op)).toBe(apply(a, op));
          expect(b.uart.irqLevel).toBe(a.uart.irqLevel);
        }
        expect(b.host.sent).toEqual(a.host.sent.slice(sentBefore));
        // The restored UART drove its line once, to the saved level, and then changed it as the original did.
        expect(b.irq.slice(b.irq.length - (a.irq.length - irqBefore))).toEqual(a.irq.slice(irqBefore));
        expect(b.uart.state()).toEqual(a.uart.state());
      }),
      { numRuns: 400 },
    );
  });

  it('keeps both FIFOs, oldest byte first, and re-asserts a pending interrupt on a fresh line', () => {
    const a = newUart();
    a.uart.pioWrite(UART_FCR, 1, FCR_FIFO_ENABLE);
    a.uart.pioWrite(UART_MCR, 1, MCR_OUT2);
    a.uart.pioWrite(UART_IER, 1, IER_ERBFI);
    a.host.input.push(0x41, 0x42, 0x43);
    a.uart.pollRx();
    expect(a.uart.pioRead(UART_RBR, 1)).toBe(0x41);
    a.host.backlog = SERIAL_TX_BACKLOG_LIMIT; // the host is slow: THR bytes wait in the TX FIFO
    a.uart.pioWrite(UART_THR, 1, 0x61);
    a.uart.pioWrite(UART_THR, 1, 0x62);
    const state = a.uart.state();
    expect(state.rxFifo).toEqual([0x42, 0x43]);
    expect(state.txFifo).toEqual([0x61, 0x62]);
    expect(a.uart.irqLevel).toBe(true);

    const b = newUart();
    b.host.backlog = SERIAL_TX_BACKLOG_LIMIT;
    b.uart.restore(state);
    expect(b.irq).toEqual([true]);
    expect(b.uart.pioRead(UART_LSR, 1) & LSR_THRE).toBe(0); // still held
    expect(b.uart.pioRead(UART_RBR, 1)).toBe(0x42);
    b.host.backlog = 0;
    b.uart.pollTx(); // this run's host has room: the held bytes go out here, not in the old run
    expect(b.host.sent).toEqual([0x61, 0x62]);
  });

  it('refuses states no 16550A can be in', () => {
    const good = newUart().uart.state();
    const bad: Partial<Record<keyof Serial16550State, unknown>>[] = [
      { ier: 0x10 },
      { mcr: 0x20 },
      { fcr: 0x02 }, // a FIFO reset bit is never latched
      { lcr: 256 },
      { scr: -1 },
      { lsrErrors: 0x20 },
      { msrDeltas: 0x10 },
      { thrIpending: 1 },
      { rxFifo: [1, 2] }, // two bytes without FIFOs
      { txFifo: [300] },
      { dll: 1.5 },
    ];
    for (const change of bad) {
      expect(() => newUart().uart.restore({ ...good, ...change } as Serial16550State), JSON.stringify(change)).toThrow(RangeError);
    }
    expect(() => newUart().uart.restore({ ...good, fcr: FCR_FIFO_ENABLE, rxFifo: Array.from({ length: 16 }, (_, i) => i) })).not.toThrow();
  });
});

const FW_CONFIG: FwCfgConfig = {
  ramSize: 16 << 20,
  cpus: 2,
  cmdline: 'console=ttyS0',
  e820: [{ base: 0, length: 0x9fc00, type: 1 }],
  files: { 'opt/test': new Uint8Array([1, 2, 3, 4, 5]) },
};

type FwCfgOp =
  { kind: 'select'; size: PioSize; key: number } | { kind: 'read'; offset: number; size: PioSize } | { kind: 'data-write'; value: number };

const fwCfgOp: fc.Arbitrary<FwCfgOp> = fc.oneof(
  fc.record({
    kind: fc.constant('select' as const),
    size: fc.constantFrom<PioSize>(1, 2, 4),
    key: fc.oneof(fc.integer({ min: 0, max: 0x22 }), fc.integer({ min: 0, max: 0xffff })),
  }),
  fc.record({
    kind: fc.constant('read' as const),
    offset: fc.integer({ min: 0, max: FW_CFG_IO_SIZE - 1 }),
    size: fc.constantFrom<PioSize>(1, 2, 4),
  }),
  fc.record({ kind: fc.constant('data-write' as const), value: fc.integer({ min: 0, max: 0xff }) }),
);

function applyFwCfg(dev: FwCfg, op: FwCfgOp): number | undefined {
  switch (op.kind) {
    case 'select':
      dev.pioWrite(0, op.size, op.key);
      return undefined;
    case 'read':
      return dev.pioRead(op.offset, op.size);
    case 'data-write':
      dev.pioWrite(1, 1, op.value);
      return undefined;
  }
}

describe('FwCfg state/restore', () => {
  it('a restored fw_cfg reads on from the same item at the same offset', () => {
    fc.assert(
      fc.property(fc.array(fwCfgOp, { maxLength: 80 }), fc.array(fwCfgOp, { maxLength: 80 }), (before, after) => {
        const a = new FwCfg(FW_CONFIG);
        for (const op of before) applyFwCfg(a, op);
        const b = new FwCfg(FW_CONFIG);
        b.restore(JSON.parse(JSON.stringify(a.state())) as ReturnType<FwCfg['state']>);
        expect(b.state()).toEqual(a.state());
        for (const op of after) expect(applyFwCfg(b, op)).toBe(applyFwCfg(a, op));
      }),
      { numRuns: 300 },
    );
  });

  it('mid-way through the file directory', () => {
    const a = new FwCfg(FW_CONFIG);
    a.pioWrite(0, 2, FW_CFG_FILE_DIR);
    for (let i = 0; i < 10; i++) a.pioRead(1, 1);
    expect(a.state()).toEqual({ selector: FW_CFG_FILE_DIR, offset: 10 });
    const b = new FwCfg(FW_CONFIG);
    b.restore(a.state());
    const rest = (d: FwCfg): number[] => Array.from({ length: 40 }, () => d.pioRead(1, 1));
    expect(rest(b)).toEqual(rest(a));
  });

  it('refuses a key that is not 16 bits or an offset past the item', () => {
    const dev = new FwCfg(FW_CONFIG);
    expect(() => dev.restore({ selector: 0x10000, offset: 0 })).toThrow(RangeError);
    expect(() => dev.restore({ selector: FW_CFG_SIGNATURE, offset: 5 })).toThrow(/outside item 0x0 \(4 bytes\)/);
    expect(() => dev.restore({ selector: 0x7777, offset: 1 })).toThrow(RangeError); // no such item: only offset 0
    dev.restore({ selector: FW_CFG_SIGNATURE, offset: 4 }); // at the end: reads return 0
    expect(dev.pioRead(1, 1)).toBe(0);
  });
});

describe('DebugExit state/restore', () => {
  it('has no state, and a restored one still ends the run with the value written', () => {
    const values: number[] = [];
    const a = new DebugExit((v) => values.push(v));
    expect(a.state()).toEqual({});
    const b = new DebugExit((v) => values.push(v));
    b.restore(JSON.parse(JSON.stringify(a.state())) as ReturnType<DebugExit['state']>);
    b.pioWrite(0, 2, 0x12345);
    expect(values).toEqual([0x2345]);
    expect(() => b.restore({ value: 1 } as unknown as ReturnType<DebugExit['state']>)).toThrow(RangeError);
  });
});
