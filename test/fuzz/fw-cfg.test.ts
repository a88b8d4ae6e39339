/**
 * Fuzzing fw_cfg (src/devices/fw-cfg.ts) through its PioDevice interface, over random machine
 * configurations (RAM size, CPUs, command line, memory map, named files): random selector and
 * data accesses of every size and offset, device resets and snapshot/restore. The guest must read
 * each selected item's bytes in order from its start, then zeros (and zeros for an unknown key),
 * a wide read must pack consecutive bytes little-endian, data-port writes must change nothing,
 * the items must never change, and the file directory must list every file, sorted, with the key
 * that selects exactly its bytes.
 */
import fc from 'fast-check';
import { describe, it } from 'vitest';
import type { PioSize } from '../../src/devices/device.js';
import {
  FW_CFG_CMDLINE_DATA,
  FW_CFG_CMDLINE_SIZE,
  FW_CFG_DIR_COUNT_SIZE,
  FW_CFG_E820_FILE,
  FW_CFG_FILE_DIR,
  FW_CFG_FILE_ENTRY_SIZE,
  FW_CFG_FILE_FIRST,
  FW_CFG_FILE_NAME_OFFSET,
  FW_CFG_FILE_SELECT_OFFSET,
  FW_CFG_FILE_SIZE_OFFSET,
  FW_CFG_KEY_MASK,
  FW_CFG_MAX_CPUS,
  FW_CFG_MAX_FILE_PATH,
  FW_CFG_NB_CPUS,
  FW_CFG_RAM_SIZE,
  FW_CFG_SIGNATURE,
  FW_CFG_WRITE_CHANNEL,
  FwCfg,
  encodeE820,
  type FwCfgConfig,
} from '../../src/devices/fw-cfg.js';
import { FUZZ_TIMEOUT_MS, fuzz, holds, same, sameList } from './fuzz-config.js';

const SELECTOR = 0;
const DATA = 1;
const BYTE_MASK = 0xff;
const BYTE_BITS = 8;

/** File names: printable, at most FW_CFG_MAX_FILE_PATH - 1 bytes of UTF-8, unique. */
const fileNameArb = fc
  .string({ minLength: 1, maxLength: 20, unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz/-._0123456789é') })
  .filter((name) => new TextEncoder().encode(name).length < FW_CFG_MAX_FILE_PATH && name !== FW_CFG_E820_FILE);

const configArb: fc.Arbitrary<FwCfgConfig> = fc
  .record({
    ramSize: fc.oneof(fc.constantFrom(0, 4096, 16 << 20, 2 ** 32, Number.MAX_SAFE_INTEGER), fc.nat()),
    cpus: fc.integer({ min: 1, max: 0xffff }),
    extraCpus: fc.integer({ min: 0, max: 8 }),
    cmdline: fc.option(fc.string({ maxLength: 200 }), { nil: undefined }),
    e820: fc.option(
      fc.array(fc.record({ base: fc.nat(), length: fc.nat(), type: fc.integer({ min: 0, max: 0xffffffff }) }), { maxLength: 8 }),
      { nil: undefined },
    ),
    files: fc.uniqueArray(fc.tuple(fileNameArb, fc.uint8Array({ maxLength: 300 })), { maxLength: 8, selector: ([name]) => name }),
  })
  .map(({ ramSize, cpus, extraCpus, cmdline, e820, files }) => ({
    ramSize,
    cpus,
    maxCpus: Math.min(cpus + extraCpus, 0xffff),
    ...(cmdline === undefined ? {} : { cmdline }),
    ...(e820 === undefined ? {} : { e820 }),
    files: Object.fromEntries(files),
  }));

type Op =
  | { kind: 'select'; size: PioSize; value: number }
  | { kind: 'read'; offset: number; size: PioSize }
  | { kind: 'write-data'; size: PioSize; value: number }
  | { kind: 'reset' }
  | { kind: 'snapshot' };

const sizeArb = fc.constantFrom<PioSize>(1, 2, 4);
const keyArb = fc.oneof(
  fc.integer({ min: 0, max: 0x1f }),
  fc.integer({ min: FW_CFG_FILE_FIRST, max: FW_CFG_FILE_FIRST + 10 }),
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.integer({ min: 0, max: 0x1f }).map((k) => k | FW_CFG_WRITE_CHANNEL),
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('select' as const), size: sizeArb, value: keyArb }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('read' as const), offset: fc.constantFrom(SELECTOR, DATA), size: sizeArb }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('write-data' as const), size: sizeArb, value: fc.integer({ min: 0, max: 0xffffffff }) }),
  },
  { weight: 1, arbitrary: fc.constantFrom({ kind: 'reset' as const }, { kind: 'snapshot' as const }) },
);

/** The directory's entries, parsed as firmware does (big-endian). */
function parseDirectory(dir: Uint8Array): { name: string; size: number; select: number }[] {
  const view = new DataView(dir.buffer, dir.byteOffset, dir.byteLength);
  const count = view.getUint32(0);
  same(dir.length, FW_CFG_DIR_COUNT_SIZE + count * FW_CFG_FILE_ENTRY_SIZE, 'directory size');
  return Array.from({ length: count }, (_, i) => {
    const at = FW_CFG_DIR_COUNT_SIZE + i * FW_CFG_FILE_ENTRY_SIZE;
    const nameBytes = dir.subarray(at + FW_CFG_FILE_NAME_OFFSET, at + FW_CFG_FILE_ENTRY_SIZE);
    const end = nameBytes.indexOf(0);
    holds(end >= 0, 'a file name is not NUL-terminated');
    return {
      name: new TextDecoder().decode(nameBytes.subarray(0, end)),
      size: view.getUint32(at + FW_CFG_FILE_SIZE_OFFSET),
      select: view.getUint16(at + FW_CFG_FILE_SELECT_OFFSET),
    };
  });
}

function checkDirectory(fw: FwCfg, config: FwCfgConfig): void {
  const files = new Map(Object.entries(config.files ?? {}));
  if (config.e820) files.set(FW_CFG_E820_FILE, encodeE820(config.e820));
  const entries = parseDirectory(fw.item(FW_CFG_FILE_DIR)!);
  same(entries.length, files.size, 'files in the directory');
  const names = entries.map((e) => e.name);
  const byteOrder = [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  sameList(names, byteOrder, 'directory order (strcmp)');
  for (const entry of entries) {
    const data = files.get(entry.name);
    holds(data !== undefined, `the directory lists "${entry.name}", which was not given`);
    same(entry.size, data!.length, `size of "${entry.name}"`);
    holds(entry.select >= FW_CFG_FILE_FIRST, `"${entry.name}" has key ${entry.select}, below FW_CFG_FILE_FIRST`);
    sameList([...fw.item(entry.select)!], [...data!], `the bytes behind "${entry.name}"`);
  }
}

function checkFixedItems(fw: FwCfg, config: FwCfgConfig): void {
  const le = (bytes: Uint8Array): number => bytes.reduce((n, b, i) => n + b * 2 ** (BYTE_BITS * i), 0);
  same(new TextDecoder().decode(fw.item(FW_CFG_SIGNATURE)), 'QEMU');
  same(le(fw.item(FW_CFG_RAM_SIZE)!), config.ramSize, 'FW_CFG_RAM_SIZE');
  same(le(fw.item(FW_CFG_NB_CPUS)!), config.cpus, 'FW_CFG_NB_CPUS');
  same(le(fw.item(FW_CFG_MAX_CPUS)!), config.maxCpus ?? config.cpus, 'FW_CFG_MAX_CPUS');
  const cmdline = config.cmdline === undefined ? new Uint8Array(0) : Buffer.from(`${config.cmdline}\0`, 'utf8');
  same(le(fw.item(FW_CFG_CMDLINE_SIZE)!), cmdline.length, 'FW_CFG_CMDLINE_SIZE');
  sameList([...fw.item(FW_CFG_CMDLINE_DATA)!], [...cmdline], 'FW_CFG_CMDLINE_DATA');
}

describe('fw_cfg fuzzing', () => {
  it(
    'streams the selected item from its start then zeros, never changes an item, and lists every file',
    () =>
      fuzz(
        fc.record({ config: configArb, ops: fc.array(opArb, { maxLength: 400, size: 'max' }) }),
        ({ config, ops }) => {
          let fw = new FwCfg(config);
          checkFixedItems(fw, config);
          checkDirectory(fw, config);
          const items = new Map<number, number[]>();
          const itemOf = (key: number): number[] => {
            const k = key & ~FW_CFG_WRITE_CHANNEL;
            if (!items.has(k)) items.set(k, [...(fw.item(k) ?? [])]);
            return items.get(k)!;
          };
          // The model: the selected key and how far into its item the guest has read.
          let key = FW_CFG_SIGNATURE;
          let offset = 0;
          for (const op of ops) {
            switch (op.kind) {
              case 'select':
                fw.pioWrite(SELECTOR, op.size, op.value);
                key = op.size === 1 ? op.value & BYTE_MASK : op.value & FW_CFG_KEY_MASK;
                offset = 0;
                same(fw.selector, key, 'the selected key');
                break;
              case 'read': {
                const value = fw.pioRead(op.offset, op.size);
                const item = itemOf(key);
                let expected = 0;
                for (let i = 0; i < op.size; i++) expected += (item[offset + i] ?? 0) * 2 ** (BYTE_BITS * i);
                same(value, expected, `a ${op.size}-byte read at offset ${offset} of item 0x${key.toString(16)}`);
                // Reads past the end read zeros without moving further.
                offset = Math.min(offset + op.size, Math.max(offset, item.length));
                break;
              }
              case 'write-data':
                fw.pioWrite(DATA, op.size, op.value); // ignored, as in QEMU since v2.4
                break;
              case 'reset':
                fw.reset();
                key = FW_CFG_SIGNATURE;
                offset = 0;
                break;
              case 'snapshot': {
                const saved = JSON.parse(JSON.stringify(fw.state())) as ReturnType<FwCfg['state']>;
                fw = new FwCfg(config);
                fw.restore(saved);
                break;
              }
            }
            const state = fw.state();
            same(state.selector, key);
            same(state.offset, offset, 'the read offset');
          }
          // The guest cannot change what the machine published.
          for (const [k, bytes] of items) sameList([...(fw.item(k) ?? [])], bytes, `item 0x${k.toString(16)} changed`);
        },
        300,
      ),
    FUZZ_TIMEOUT_MS,
  );
});
