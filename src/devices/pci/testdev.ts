/**
 * QEMU's pci-testdev (`-device pci-testdev`, hw/misc/pci-testdev.c; 1b36:0005, class "other"):
 * what kvm-unit-tests' pci-testdev library and vmexit test drive. BAR 0 is 4 KiB of memory and
 * BAR 1 256 ports, each holding the same protocol:
 *
 * - Writing n to byte 0 selects test n (0-2: no-eventfd, wildcard-eventfd, datamatch-eventfd) in
 *   that BAR's space; any other value selects none. Selecting resets the test's count to 0.
 * - Reads (byte by byte) return the selected test's header: test (u8), width (u8, 1), pad, offset
 *   (u32: IOTEST_SIZE + index × width), data (u8: 0xFA when the test matches data, else 0xCE),
 *   pad, count (u32), then the NUL-terminated name ("mmio-no-eventfd", "portio-datamatch-eventfd"...).
 *   A read at or past the header's end, or with no test selected, returns 0.
 * - A write to the test's offset counts (a datamatch test counts only writes of the right width and
 *   data), so `count` tells the guest the device saw each write. QEMU counts through an eventfd
 *   for two of the three tests (the write never reaches QEMU then, and count stays 0); tskvm has no
 *   ioeventfd, so it counts every test's writes itself, which the library accepts (count = writes).
 */
import { arrayField, intField, type StateFields } from '../state-check.js';
import { PciFunction, type PciFunctionState } from './function.js';

export const PCI_VENDOR_ID_REDHAT = 0x1b36;
export const PCI_DEVICE_ID_REDHAT_TEST = 0x0005;
export const PCI_CLASS_OTHERS = 0xff0000;
export const PCI_TESTDEV_BAR_MEM = 0;
export const PCI_TESTDEV_BAR_IO = 1;
/** IOTEST_MEMSIZE × 2 and IOTEST_IOSIZE × 2: room for the header and the test offsets. */
export const PCI_TESTDEV_MEM_SIZE = 4096;
export const PCI_TESTDEV_IO_SIZE = 256;
const IOTEST_MEMSIZE = 2048;
const IOTEST_IOSIZE = 128;
const IOTEST_DATAMATCH = 0xfa;
const IOTEST_NOMATCH = 0xce;
const IOTEST_ACCESS_WIDTH = 1;
const IOTEST_TESTS = ['no-eventfd', 'wildcard-eventfd', 'datamatch-eventfd'] as const;
const IOTEST_TYPES = ['mmio', 'portio'] as const;

// Header layout (struct PCITestDevHdr).
const HDR_TEST = 0;
const HDR_WIDTH = 1;
const HDR_OFFSET = 4;
const HDR_DATA = 8;
const HDR_COUNT = 12;
const HDR_NAME = 16;

const BYTE_BITS = 8;
const BYTE_MASK = 0xff;

/** pci-testdev's state: its configuration space, the test selected in each BAR, and each test's count. */
export interface PciTestdevState extends PciFunctionState {
  /** The selected test per BAR (memory, I/O): an index into the six tests, or -1. */
  current: number[];
  counts: number[];
}

const U32_MAX = 0xffffffff;

interface IoTest {
  header: Uint8Array;
  offset: number;
  matchData: boolean;
  data: number;
}

export class PciTestdev extends PciFunction {
  /** The six tests' headers, made on the first BAR access or state(): every board has the device, few guests use it. */
  private built: IoTest[] | undefined;
  /** The selected test per BAR (index into tests), or -1. */
  private readonly current = [-1, -1];

  constructor() {
    super(
      { vendorId: PCI_VENDOR_ID_REDHAT, deviceId: PCI_DEVICE_ID_REDHAT_TEST, revision: 0, classCode: PCI_CLASS_OTHERS, interruptPin: 0 },
      [
        { kind: 'memory', size: PCI_TESTDEV_MEM_SIZE },
        { kind: 'io', size: PCI_TESTDEV_IO_SIZE },
      ],
    );
  }

  private get tests(): IoTest[] {
    this.built ??= ioTests();
    return this.built;
  }

  override barRead(bar: number, offset: number, size: number): number {
    let value = 0;
    for (let i = 0; i < size; i++) value |= this.readByte(bar, offset + i) << (i * BYTE_BITS);
    return value >>> 0;
  }

  override barWrite(bar: number, offset: number, size: number, value: number): void {
    const space = bar === PCI_TESTDEV_BAR_MEM ? 0 : 1;
    if (offset === HDR_TEST) {
      const n = value & BYTE_MASK;
      this.current[space] = n < IOTEST_TESTS.length ? space * IOTEST_TESTS.length + n : -1;
      const test = this.tests[this.current[space]!];
      if (test) new DataView(test.header.buffer).setUint32(HDR_COUNT, 0, true);
      return;
    }
    const test = this.tests[this.current[space]!];
    if (!test || offset !== test.offset) return;
    if (test.matchData && (size !== IOTEST_ACCESS_WIDTH || (value & BYTE_MASK) !== test.data)) return;
    const view = new DataView(test.header.buffer);
    view.setUint32(HDR_COUNT, (view.getUint32(HDR_COUNT, true) + 1) >>> 0, true);
  }

  override state(): PciTestdevState {
    return {
      ...super.state(),
      current: [...this.current],
      counts: this.tests.map((t) => new DataView(t.header.buffer).getUint32(HDR_COUNT, true)),
    };
  }

  protected override prepareOwnRestore(fields: StateFields, device: string): () => void {
    // A BAR's selection is one of its own space's tests, or none.
    const current = arrayField(device, fields, 'current', this.current.length, (v, space) => {
      const name = `current[${space}]`;
      return v === -1 ? -1 : intField(device, { [name]: v }, name, space * IOTEST_TESTS.length, (space + 1) * IOTEST_TESTS.length - 1);
    });
    const counts = arrayField(device, fields, 'counts', this.tests.length, (v, i) => {
      const name = `counts[${i}]`;
      return intField(device, { [name]: v }, name, 0, U32_MAX);
    });
    return () => {
      current.forEach((c, space) => (this.current[space] = c));
      counts.forEach((count, i) => new DataView(this.tests[i]!.header.buffer).setUint32(HDR_COUNT, count, true));
    };
  }

  private readByte(bar: number, offset: number): number {
    const test = this.tests[this.current[bar === PCI_TESTDEV_BAR_MEM ? 0 : 1]!];
    if (!test || offset >= test.header.length - 1) return 0;
    return test.header[offset]!;
  }
}

/** Each test's header (QEMU's IOTest: test number, width, offset, data, count, name) and how it matches. */
function ioTests(): IoTest[] {
  const tests: IoTest[] = [];
  const encoder = new TextEncoder();
  IOTEST_TYPES.forEach((type, t) => {
    IOTEST_TESTS.forEach((test, n) => {
      const i = t * IOTEST_TESTS.length + n;
      const name = encoder.encode(`${type}-${test}`);
      const header = new Uint8Array(HDR_NAME + name.length + 1);
      const view = new DataView(header.buffer);
      const matchData = test !== 'wildcard-eventfd';
      const offset = (type === 'mmio' ? IOTEST_MEMSIZE : IOTEST_IOSIZE) + i * IOTEST_ACCESS_WIDTH;
      header[HDR_TEST] = i;
      header[HDR_WIDTH] = IOTEST_ACCESS_WIDTH;
      view.setUint32(HDR_OFFSET, offset, true);
      header[HDR_DATA] = matchData ? IOTEST_DATAMATCH : IOTEST_NOMATCH;
      header.set(name, HDR_NAME);
      tests.push({ header, offset, matchData, data: header[HDR_DATA]! });
    });
  });
  return tests;
}
