/**
 * INT 14h, the serial ports (COM1-COM4 at the BDA's bases, DX = 0-3), driven through the
 * UARTs' own registers exactly as a BIOS's port I/O would: 00h initialise (baud from the BIOS
 * table, parity, stop bits, word length), 01h send AL (waiting for THRE), 02h receive into AL
 * (waiting for data), 03h status (AH = LSR, AL = MSR). Waits end after the BDA's per-port
 * time-out in timer ticks (0040:007C), with AH bit 7 set, as the IBM BIOS reports a time-out.
 */
import {
  LCR_DLAB,
  LSR_DR,
  LSR_THRE,
  MCR_DTR,
  MCR_RTS,
  UART_DLL,
  UART_DLM,
  UART_IER,
  UART_LCR,
  UART_LSR,
  UART_MCR,
  UART_MSR,
  UART_RBR,
  UART_THR,
} from '../devices/serial16550.js';
import type { TrapFrame } from './frame.js';
import { BDA_COM_TIMEOUT, TICK_MS } from './layout.js';
import type { BiosCallState, BiosMachine, CallResult } from './machine.js';
import { deadlinePassed, endWait } from './system.js';
import { BAUD_DIVISORS } from './rom.js';

export const SERIAL_TIMEOUT = 0x80;
/** LSR error bits (overrun, parity, framing, break) that 02h reports with the byte. */
const LSR_ERROR_BITS = 0x1e;
const LINE_SETTINGS_MASK = 0x1f;
const BAUD_SHIFT = 5;
const MAX_PORTS = 4;
/** What POST leaves in 0040:007C for each present port: ten ticks, about half a second. */
export const SERIAL_TIMEOUT_TICKS = 0x0a;

export function int14(m: BiosMachine, f: TrapFrame, state: BiosCallState): CallResult {
  const port = f.dx;
  const base = port < MAX_PORTS ? m.ram.bda16(port * 2) : 0;
  if (!base) {
    f.ah = SERIAL_TIMEOUT; // no such port
    return 'done';
  }
  const lsr = (): number => m.portIn(base + UART_LSR, 1) & 0xff;
  const timeoutMs = (m.ram.bda8(BDA_COM_TIMEOUT + port) || 1) * TICK_MS;
  switch (f.ah) {
    case 0x00: {
      const divisor = BAUD_DIVISORS[f.al >> BAUD_SHIFT]!;
      m.portOut(base + UART_LCR, 1, LCR_DLAB);
      m.portOut(base + UART_DLL, 1, divisor & 0xff);
      m.portOut(base + UART_DLM, 1, divisor >>> 8);
      m.portOut(base + UART_LCR, 1, f.al & LINE_SETTINGS_MASK);
      m.portOut(base + UART_IER, 1, 0);
      f.ah = lsr();
      f.al = m.portIn(base + UART_MSR, 1) & 0xff;
      return 'done';
    }
    case 0x01: {
      m.portOut(base + UART_MCR, 1, MCR_DTR | MCR_RTS);
      if (!(lsr() & LSR_THRE)) {
        if (!deadlinePassed(m, f, state, timeoutMs)) return 'wait';
        f.ah = lsr() | SERIAL_TIMEOUT;
        return 'done';
      }
      endWait(f, state);
      m.portOut(base + UART_THR, 1, f.al);
      f.ah = lsr();
      return 'done';
    }
    case 0x02: {
      if (port === 0) m.router?.serialUsed();
      if (!(lsr() & LSR_DR)) {
        if (!deadlinePassed(m, f, state, timeoutMs)) return 'wait';
        f.ah = lsr() | SERIAL_TIMEOUT;
        return 'done';
      }
      endWait(f, state);
      f.al = m.portIn(base + UART_RBR, 1) & 0xff;
      f.ah = lsr() & LSR_ERROR_BITS;
      return 'done';
    }
    case 0x03:
      if (port === 0) m.router?.serialUsed();
      f.ah = lsr();
      f.al = m.portIn(base + UART_MSR, 1) & 0xff;
      return 'done';
    default:
      return 'unsupported';
  }
}
