/**
 * The snapshot file format (docs/snapshot-format.md is its specification): a 32-byte preamble
 * (magic, format version, header length and CRC-32, file length), a JSON header (tskvm version,
 * machine configuration, CPUID, vCPUs, and a table of sections and memory runs, each with its
 * offset, length and CRC-32), then the sections (8-byte aligned), then guest memory: only the
 * pages the guest touched, each run page-aligned in the file so that restore can map it
 * MAP_PRIVATE straight into guest RAM. Everything here is pure: bytes in, bytes or errors out.
 */
import { crc32 } from 'node:zlib';
import { PAGE_SIZE } from '../kvm/constants.js';
import type { CpuidEntry } from '../kvm/x86.js';

/** "TSKVMSNP": the first 8 bytes of every snapshot. */
export const SNAPSHOT_MAGIC = 'TSKVMSNP';
/** Bumped whenever the layout or the meaning of a section changes. */
export const SNAPSHOT_FORMAT_VERSION = 1;

// Preamble layout (little-endian).
export const PREAMBLE_SIZE = 32;
const PREAMBLE_MAGIC = 0;
const PREAMBLE_VERSION = 8;
const PREAMBLE_HEADER_LENGTH = 12;
const PREAMBLE_HEADER_CRC = 16;
const PREAMBLE_RESERVED = 20;
const PREAMBLE_FILE_LENGTH = 24;
const MAGIC_BYTES = new TextEncoder().encode(SNAPSHOT_MAGIC);

/** Sections start at multiples of this (the kernel structs in them have u64 fields). */
export const SECTION_ALIGN = 8;
/** Memory runs start at multiples of the page size: mmap(2) wants page-aligned file offsets. */
export const MEMORY_ALIGN = PAGE_SIZE;
/** A CRC-32 as 8 lowercase hex digits: fixed width, so the header's length does not depend on it. */
const CRC_HEX_DIGITS = 8;
const HEX = 16;
/** The largest header tskvm reads (a header is a few KiB; more means a corrupt length). */
export const MAX_HEADER_BYTES = 64 * 1024 * 1024;

/** A named blob: a kernel struct as KVM returned it, or JSON (devices). */
export interface SectionEntry {
  name: string;
  offset: number;
  length: number;
  crc32: string;
}

/** A run of guest pages: `length` bytes of guest-physical memory from `gpa`, at `offset` in the file. */
export interface MemoryRunEntry {
  gpa: number;
  length: number;
  offset: number;
  crc32: string;
}

export interface SnapshotVcpuEntry {
  id: number;
  /** KVM_MP_STATE_* when it was saved. */
  mpState: number;
  /** The guest TSC's frequency. */
  tscKhz: number;
}

/**
 * What restore needs to rebuild the machine around the saved state: the parts of the run's
 * configuration that the guest can see. `board` is the board's plain-data description (which
 * devices, fw_cfg's contents), opaque to this module.
 */
export interface SnapshotMachine {
  memorySize: number;
  cpus: number;
  irqchip: boolean;
  board: JsonObject;
}

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export interface SnapshotHeader {
  format: number;
  /** The tskvm version that wrote it: only the same version restores it. */
  tskvm: string;
  /** ISO 8601 time of the capture. */
  created: string;
  /** Where it was made (for people: nothing is checked against it). */
  host: { kernel: string; cpu: string };
  machine: SnapshotMachine;
  /** vCPU 0's CPUID table: the features the guest may be using, checked against this host's. */
  cpuid: CpuidEntry[];
  vcpus: SnapshotVcpuEntry[];
  sections: SectionEntry[];
  memory: {
    size: number;
    pageSize: number;
    /** How the saved pages were chosen (see docs/snapshot-format.md). */
    detection: string;
    runs: MemoryRunEntry[];
  };
}

/** A snapshot file that cannot be used, and why (the caller turns it into a UsageError). */
export class SnapshotFormatError extends Error {
  override readonly name = 'SnapshotFormatError';
}

export function crcHex(bytes: Uint8Array): string {
  return hex32(crc32(bytes));
}

/** A CRC-32 value as the header writes it. */
export function hex32(value: number): string {
  return (value >>> 0).toString(HEX).padStart(CRC_HEX_DIGITS, '0');
}

/** The CRC-32 placeholder a header is laid out with before the checksums are known. */
export const CRC_PLACEHOLDER = '0'.repeat(CRC_HEX_DIGITS);

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

export function encodePreamble(headerBytes: Uint8Array, fileLength: number): Uint8Array {
  const out = new Uint8Array(PREAMBLE_SIZE);
  const view = new DataView(out.buffer);
  out.set(MAGIC_BYTES, PREAMBLE_MAGIC);
  view.setUint32(PREAMBLE_VERSION, SNAPSHOT_FORMAT_VERSION, true);
  view.setUint32(PREAMBLE_HEADER_LENGTH, headerBytes.length, true);
  view.setUint32(PREAMBLE_HEADER_CRC, crc32(headerBytes), true);
  view.setUint32(PREAMBLE_RESERVED, 0, true);
  view.setBigUint64(PREAMBLE_FILE_LENGTH, BigInt(fileLength), true);
  return out;
}

export interface Preamble {
  version: number;
  headerLength: number;
  headerCrc: number;
  fileLength: number;
}

/**
 * Reads the preamble of a file of `fileSize` bytes whose first bytes are `bytes`: refuses what is
 * not a snapshot, another format version, and a file whose length is not the one it was written with.
 */
export function decodePreamble(bytes: Uint8Array, fileSize: number): Preamble {
  if (bytes.length < MAGIC_BYTES.length || !MAGIC_BYTES.every((b, i) => bytes[i] === b)) {
    throw new SnapshotFormatError(`it is not a tskvm snapshot (it does not start with "${SNAPSHOT_MAGIC}")`);
  }
  if (bytes.length < PREAMBLE_SIZE)
    throw new SnapshotFormatError(`it is truncated: ${fileSize} bytes, less than the ${PREAMBLE_SIZE}-byte preamble`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, PREAMBLE_SIZE);
  const version = view.getUint32(PREAMBLE_VERSION, true);
  if (version !== SNAPSHOT_FORMAT_VERSION) {
    throw new SnapshotFormatError(`it is in snapshot format ${version}; this tskvm reads format ${SNAPSHOT_FORMAT_VERSION} only`);
  }
  if (view.getUint32(PREAMBLE_RESERVED, true) !== 0)
    throw new SnapshotFormatError("it is corrupt: the preamble's reserved word is not zero");
  const fileLength = Number(view.getBigUint64(PREAMBLE_FILE_LENGTH, true));
  if (fileSize < fileLength) throw new SnapshotFormatError(`it is truncated: ${fileSize} bytes of the ${fileLength} it was written with`);
  if (fileSize > fileLength)
    throw new SnapshotFormatError(`it has ${fileSize - fileLength} bytes more than the ${fileLength} it was written with`);
  const headerLength = view.getUint32(PREAMBLE_HEADER_LENGTH, true);
  if (headerLength === 0 || headerLength > MAX_HEADER_BYTES || PREAMBLE_SIZE + headerLength > fileLength) {
    throw new SnapshotFormatError(`it is corrupt: a ${headerLength}-byte header does not fit`);
  }
  return { version, headerLength, headerCrc: view.getUint32(PREAMBLE_HEADER_CRC, true), fileLength };
}

/** Checks the header's CRC and parses and validates it against the file's length. */
export function decodeHeader(bytes: Uint8Array, preamble: Preamble): SnapshotHeader {
  if (crc32(bytes) !== preamble.headerCrc) throw new SnapshotFormatError('it is corrupt: its header fails its CRC-32 check');
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new SnapshotFormatError(`it is corrupt: its header is not JSON (${(err as Error).message})`);
  }
  return validateHeader(parsed, preamble.fileLength);
}

/** The header's shape, and every offset inside the file, aligned, without overlaps. */
export function validateHeader(value: unknown, fileLength: number): SnapshotHeader {
  const h = object(value, 'header');
  integer(h.format, 'format', SNAPSHOT_FORMAT_VERSION, SNAPSHOT_FORMAT_VERSION);
  string(h.tskvm, 'tskvm');
  string(h.created, 'created');
  const host = object(h.host, 'host');
  string(host.kernel, 'host.kernel');
  string(host.cpu, 'host.cpu');
  const machine = object(h.machine, 'machine');
  integer(machine.memorySize, 'machine.memorySize', PAGE_SIZE, Number.MAX_SAFE_INTEGER);
  integer(machine.cpus, 'machine.cpus', 1, 0xffff);
  if (typeof machine.irqchip !== 'boolean') fail('machine.irqchip is not a boolean');
  object(machine.board, 'machine.board');
  array(h.cpuid, 'cpuid').forEach((e, i) => {
    const entry = object(e, `cpuid[${i}]`);
    for (const k of ['function', 'index', 'flags', 'eax', 'ebx', 'ecx', 'edx']) integer(entry[k], `cpuid[${i}].${k}`, 0, 0xffffffff);
  });
  const vcpus = array(h.vcpus, 'vcpus');
  if (vcpus.length !== machine.cpus) fail(`it lists ${vcpus.length} vCPUs for a ${String(machine.cpus)}-vCPU machine`);
  vcpus.forEach((v, i) => {
    const vcpu = object(v, `vcpus[${i}]`);
    integer(vcpu.id, `vcpus[${i}].id`, i, i);
    integer(vcpu.mpState, `vcpus[${i}].mpState`, 0, 0xffffffff);
    integer(vcpu.tscKhz, `vcpus[${i}].tscKhz`, 0, 0xffffffff);
  });
  const claimed: [number, number, string][] = [];
  const names = new Set<string>();
  array(h.sections, 'sections').forEach((s, i) => {
    const section = object(s, `sections[${i}]`);
    const name = string(section.name, `sections[${i}].name`);
    if (names.has(name)) fail(`section "${name}" appears twice`);
    names.add(name);
    const offset = integer(section.offset, `sections[${i}].offset`, PREAMBLE_SIZE, fileLength);
    const length = integer(section.length, `sections[${i}].length`, 0, fileLength);
    if (offset % SECTION_ALIGN !== 0) fail(`section "${name}" starts at ${offset}, not a multiple of ${SECTION_ALIGN}`);
    crc(section.crc32, `sections[${i}].crc32`);
    claimed.push([offset, length, `section "${name}"`]);
  });
  const memory = object(h.memory, 'memory');
  const size = integer(memory.size, 'memory.size', PAGE_SIZE, Number.MAX_SAFE_INTEGER);
  if (size !== machine.memorySize) fail(`memory.size ${size} is not machine.memorySize ${String(machine.memorySize)}`);
  integer(memory.pageSize, 'memory.pageSize', PAGE_SIZE, PAGE_SIZE);
  string(memory.detection, 'memory.detection');
  let end = 0;
  array(memory.runs, 'memory.runs').forEach((r, i) => {
    const run = object(r, `memory.runs[${i}]`);
    const gpa = integer(run.gpa, `memory.runs[${i}].gpa`, 0, size);
    const length = integer(run.length, `memory.runs[${i}].length`, PAGE_SIZE, size);
    const offset = integer(run.offset, `memory.runs[${i}].offset`, PREAMBLE_SIZE, fileLength);
    crc(run.crc32, `memory.runs[${i}].crc32`);
    if (gpa % PAGE_SIZE || length % PAGE_SIZE || offset % MEMORY_ALIGN) fail(`memory run ${i} is not page-aligned`);
    if (gpa < end || gpa + length > size)
      fail(`memory run ${i} (0x${gpa.toString(HEX)}, ${length} bytes) overlaps another or lies outside guest RAM`);
    end = gpa + length;
    claimed.push([offset, length, `memory run ${i}`]);
  });
  // Every byte range inside the file, and none on top of another.
  claimed.sort((a, b) => a[0] - b[0]);
  let fileEnd = PREAMBLE_SIZE;
  for (const [offset, length, what] of claimed) {
    if (offset < fileEnd) fail(`${what} overlaps the header or another part`);
    if (offset + length > fileLength) fail(`${what} runs past the end of the file`);
    fileEnd = offset + length;
  }
  return value as SnapshotHeader;
}

function fail(why: string): never {
  throw new SnapshotFormatError(`it is corrupt: ${why}`);
}

function object(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${what} is not an object`);
  return v as Record<string, unknown>;
}

function array(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) fail(`${what} is not an array`);
  return v;
}

function string(v: unknown, what: string): string {
  if (typeof v !== 'string') fail(`${what} is not a string`);
  return v;
}

function integer(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
    fail(`${what} is ${JSON.stringify(v)}, not an integer in ${min}..${max}`);
  return v;
}

function crc(v: unknown, what: string): void {
  if (typeof v !== 'string' || !/^[0-9a-f]{8}$/.test(v)) fail(`${what} is not a CRC-32`);
}
