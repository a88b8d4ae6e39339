// A device is a pure state machine: the exit loop hands it (offset, size, value) and takes back a
// number. Here is a small one in plain JS — a pseudo-random number port with a fixed seed — put on
// a port-I/O Bus next to a real tskvm 16550A UART, and driven exactly as the exit loop
// (src/vm/vcpu-loop.ts, handleIo) drives devices on every KVM_EXIT_IO. No KVM needed.
//
//   npm run build:ts && node examples/write-a-device.mjs
import { Bus, PIO_ADDRESS_SPACE_SIZE } from '../dist/devices/bus.js';
import { Serial16550, UART_REGISTER_COUNT } from '../dist/devices/serial16550.js';

/**
 * A "random number generator" on two ports:
 *   offset 0  write: seed (any non-zero value); read: the next byte of a 16-bit xorshift
 *   offset 1  read: how many numbers were drawn since the last seed (low byte)
 * Deterministic, like any good test device: the same seed gives the same numbers.
 */
class XorshiftPort {
  state = 1;
  drawn = 0;

  pioRead(offset, size) {
    if (offset === 1) return this.drawn & 0xff;
    // xorshift16 (7, 9, 8): a full-period 16-bit generator.
    let x = this.state;
    x ^= (x << 7) & 0xffff;
    x ^= x >>> 9;
    x ^= (x << 8) & 0xffff;
    this.state = x;
    this.drawn++;
    return size === 1 ? x & 0xff : x;
  }

  pioWrite(offset, _size, value) {
    if (offset !== 0) return; // writes elsewhere are ignored, as on most ISA devices
    this.state = value & 0xffff || 1; // 0 would stay 0 forever
    this.drawn = 0;
  }
}

const RNG_PORT = 0x700;
const COM1 = 0x3f8;

// The port-I/O bus: 64 KiB of ports, ranges that may not overlap.
const pio = new Bus(PIO_ADDRESS_SPACE_SIZE);
pio.register(RNG_PORT, 2, new XorshiftPort(), 'xorshift');
// The UART's host side, injected: where its output goes and where its input comes from.
let transmitted = '';
const uart = new Serial16550({
  transmit: (byte) => (transmitted += String.fromCharCode(byte)),
  txBacklog: () => 0,
  receive: () => -1, // no input
});
pio.register(COM1, UART_REGISTER_COUNT, uart, 'COM1 (16550A)');

for (const slot of pio.entries()) {
  console.log(`bus: 0x${slot.base.toString(16)}-0x${(slot.base + slot.length - 1).toString(16)} ${slot.name}`);
}

// What the exit loop does with one KVM_EXIT_IO of `size` bytes: find the owner, pass the offset
// inside its range; an unassigned port ignores writes and reads all ones.
const ALL_ONES = { 1: 0xff, 2: 0xffff, 4: 0xffffffff };
const hex = (n, size) => `0x${n.toString(16).padStart(size * 2, '0')}`;
function out(port, size, value) {
  const slot = pio.find(port);
  slot?.device.pioWrite(port - slot.base, size, value);
  console.log(`out ${hex(port, 2)} <- ${hex(value, size)}   ${slot ? slot.name : 'unassigned: ignored'}`);
}
function inp(port, size) {
  const slot = pio.find(port);
  const value = slot ? slot.device.pioRead(port - slot.base, size) : ALL_ONES[size];
  console.log(`in  ${hex(port, 2)} -> ${hex(value, size)}   ${slot ? slot.name : 'unassigned: all ones'}`);
  return value;
}

// A guest seeds the generator and draws three bytes and a word...
out(RNG_PORT, 2, 0x2a);
inp(RNG_PORT, 1);
inp(RNG_PORT, 1);
inp(RNG_PORT, 1);
inp(RNG_PORT, 2);
inp(RNG_PORT + 1, 1);
// ...reseeds with the same value and gets the same first byte...
out(RNG_PORT, 2, 0x2a);
inp(RNG_PORT, 1);
// ...talks to the UART as hello.S does: LSR.THRE (0x20) set, then a byte to THR...
inp(COM1 + 5, 1);
out(COM1, 1, 0x4f);
out(COM1, 1, 0x4b);
// ...and pokes a port nobody owns.
inp(0x200, 1);
out(0x80, 1, 0x12);
console.log(`COM1 transmitted: ${JSON.stringify(transmitted)}`);

// Every address has at most one owner: overlapping ranges are refused when registered.
try {
  pio.register(0x3f8 + 4, 2, new XorshiftPort(), 'clash');
} catch (err) {
  console.log(`${err.code}: ${err.message}`);
}
