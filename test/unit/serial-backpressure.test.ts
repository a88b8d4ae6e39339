/**
 * COM1's host side as the machine wires it (Serial16550 → ringSerialHost → ByteRing →
 * SerialBridge → sink), without KVM: a reader that stops reading makes LSR.THRE clear once the
 * backlog reaches 1 MiB, nothing is lost, and THRE comes back when the reader drains the backlog.
 */
import { describe, expect, it } from 'vitest';
import {
  FCR_FIFO_ENABLE,
  LSR_THRE,
  UART_FCR,
  SERIAL_TX_BACKLOG_LIMIT,
  Serial16550,
  UART_LSR,
  UART_THR,
  UART_FIFO_SIZE,
} from '../../src/devices/serial16550.js';
import { ringSerialHost } from '../../src/board/pc-board.js';
import { SerialBridge } from '../../src/io/serial-bridge.js';

describe('serial backpressure through the real rings', () => {
  it('clears THRE at the backlog limit and delivers every byte once the reader drains', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const received: Buffer[] = [];
    const bridge = new SerialBridge(async (chunk) => {
      received.push(chunk);
      await gate; // the reader is away until released
    });
    const uart = new Serial16550(ringSerialHost(bridge.tx, bridge.rx));
    const thre = (): boolean => (uart.pioRead(UART_LSR, 1) & LSR_THRE) !== 0;
    uart.pioWrite(UART_FCR, 1, FCR_FIFO_ENABLE); // as the 8250 driver does: a 16-byte TX FIFO

    // Let the bridge take a first chunk and block in the sink.
    uart.pioWrite(UART_THR, 1, 0);
    // The pump coalesces output for a millisecond or so: wait for the chunk, not for a time.
    for (let i = 0; i < 1000 && received.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(received.length).toBe(1);

    let written = 1;
    while (thre()) uart.pioWrite(UART_THR, 1, written++ & 0xff);
    // The first byte went to the (blocked) reader; the ring then took exactly the limit, and the
    // byte that found the backlog full waits in the TX FIFO.
    expect(written).toBe(1 + SERIAL_TX_BACKLOG_LIMIT + 1);
    // The guest may fill the rest of the 16-byte TX FIFO without losing anything.
    for (let i = 1; i < UART_FIFO_SIZE; i++) uart.pioWrite(UART_THR, 1, written++ & 0xff);
    expect(uart.txDropped).toBe(0);
    expect(thre()).toBe(false);

    release();
    for (let i = 0; i < 1000 && !thre(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(thre()).toBe(true);
    await bridge.finish();
    const all = Buffer.concat(received);
    expect(all.length).toBe(written);
    for (let i = 0; i < all.length; i++) if (all[i] !== (i & 0xff)) throw new Error(`byte ${i} is ${all[i]}`);
  });
});
