/**
 * `--trace`: one line per VM exit, and the `--trace`/`--trace-port` filters.
 *
 * Line format (fields separated by spaces; `key=value` fields are greppable as written):
 *
 *     <seconds since start, 9 decimals, right-aligned in 13> cpu<N> <kind, padded to 5> <details>  rip=0x<16 hex> cs=0x<4 hex>
 *
 * Details by kind:
 *
 *     io    <in |out> port=0x<hex> size=<1|2|4> count=<n> data=<hex> dev=<device or "unassigned">
 *     mmio  <read |write> addr=0x<hex> len=<n> data=<hex> dev=<device or "unassigned">
 *     hlt   reason=KVM_EXIT_HLT                      (shutdown, intr likewise, with their KVM_EXIT_ name)
 *     internal-error suberror=<n> (<what it means>) data=0x<hex>,0x<hex>...
 *     fail-entry reason=KVM_EXIT_FAIL_ENTRY hw_reason=0x<hex> cpu=<n>
 *     debug reason=KVM_EXIT_DEBUG exception=<#DB|#BP|n> pc=0x<hex> dr6=0x<hex> dr7=0x<hex>
 *     unknown reason=<KVM_EXIT_ name or number> hw_reason=0x<hex>
 *
 * `data` is each element (I/O) or the access (MMIO) as a little-endian value of its size in hex,
 * without 0x: `48` for a byte, `0000002a` for a dword. String I/O (count > 1) writes the
 * elements back to back, comma-separated when wider than a byte; past 16 bytes it ends with
 * `…+N`, N being the bytes left out. `data=-` when the bytes are unknown. For `in` and MMIO reads
 * the data is what the device answered, so trace after the handler ran.
 *
 * For example:
 *
 *       0.001234567 cpu0 io    out port=0x3f8 size=1 count=1 data=48 dev=COM1 (16550A)  rip=0x0000000000000012 cs=0x1000
 *       0.001300000 cpu0 mmio  read  addr=0xfee00030 len=4 data=00050014 dev=unassigned  rip=0x0000000000100010 cs=0x0008
 *       0.002000000 cpu0 hlt   reason=KVM_EXIT_HLT  rip=0x0000000000000028 cs=0x1000
 */
import {
  KVM_EXIT_DEBUG,
  KVM_EXIT_FAIL_ENTRY,
  KVM_EXIT_HLT,
  KVM_EXIT_INTR,
  KVM_EXIT_NAMES,
  KVM_EXIT_SHUTDOWN,
  KVM_INTERNAL_ERROR_NAMES,
} from '../kvm/constants.js';
import type { VcpuExit } from '../kvm/run.js';
import { UsageError } from '../errors.js';

/** The exit kinds `--trace` accepts: VcpuExit's kinds. */
export const TRACE_KINDS = ['io', 'mmio', 'hlt', 'shutdown', 'intr', 'internal-error', 'fail-entry', 'debug', 'unknown'] as const;
export type TraceKind = (typeof TRACE_KINDS)[number];
const TRACE_ALL = 'all';

/** An inclusive port range; plain data so that it can be posted to the vCPU thread. */
export type PortRange = [first: number, last: number];

export const MAX_PORT = 0xffff;
/** String I/O can move a page per exit: show its first bytes only. */
export const TRACE_DATA_MAX_BYTES = 16;
const TIME_COLUMN = 13;
const KIND_COLUMN = 5;
const NS_PER_S = 1_000_000_000n;
const DEBUG_EXCEPTION_NAMES: Readonly<Record<number, string>> = { 1: '#DB', 3: '#BP' };

export interface TraceEvent {
  /** Time since the run started. */
  elapsedNs: bigint;
  vcpu: number;
  exit: VcpuExit;
  /** The I/O (size × count) or MMIO (len) bytes, after the device handled the exit. */
  data?: Uint8Array;
  /** The device that handled an I/O or MMIO exit; undefined → "unassigned". */
  device: string | undefined;
  rip: bigint;
  cs: number;
}

/** `--trace io,mmio,hlt` (or `all`) → the kinds to trace. */
export function parseTraceKinds(spec: string): Set<TraceKind> {
  const kinds = new Set<TraceKind>();
  const names = spec.split(',').map((s) => s.trim().toLowerCase());
  for (const name of names) {
    if (name === TRACE_ALL) TRACE_KINDS.forEach((k) => kinds.add(k));
    else if ((TRACE_KINDS as readonly string[]).includes(name)) kinds.add(name as TraceKind);
    else throw new UsageError(`bad --trace kind '${name}': use a comma-separated list of ${TRACE_KINDS.join(', ')}, or ${TRACE_ALL}`);
  }
  return kinds;
}

/** `--trace-port 0x3f8,0x2f8-0x2ff,96` → inclusive ranges (hex with 0x, or decimal). */
export function parseTracePorts(spec: string): PortRange[] {
  const ranges: PortRange[] = [];
  for (const item of spec.split(',').map((s) => s.trim())) {
    const bad = (why: string): UsageError =>
      new UsageError(
        `bad --trace-port '${item}': ${why}; use ports or ranges such as 0x3f8,0x2f8-0x2ff (hex with 0x, or decimal, 0-0xffff)`,
      );
    const [from, to, ...rest] = item.split('-').map((s) => s.trim());
    if (from === undefined || rest.length) throw bad('not a port or a range');
    const first = parsePort(from);
    const last = to === undefined ? first : parsePort(to);
    if (first === undefined || last === undefined) throw bad('not a port number');
    if (last < first) throw bad('the range ends before it starts');
    ranges.push([first, last]);
  }
  return ranges;
}

function parsePort(text: string): number | undefined {
  if (!/^(0x[0-9a-f]+|[0-9]+)$/i.test(text)) return undefined;
  const port = Number(text.toLowerCase());
  return port <= MAX_PORT ? port : undefined;
}

export function portInRanges(ranges: readonly PortRange[], port: number): boolean {
  return ranges.some(([first, last]) => port >= first && port <= last);
}

/** One trace line (no newline); see the format at the top of this file. */
export function formatTraceLine(e: TraceEvent): string {
  const seconds = e.elapsedNs / NS_PER_S;
  const fraction = (e.elapsedNs % NS_PER_S).toString().padStart(9, '0');
  const time = `${seconds}.${fraction}`.padStart(TIME_COLUMN);
  const where = `rip=0x${e.rip.toString(16).padStart(16, '0')} cs=0x${e.cs.toString(16).padStart(4, '0')}`;
  return `${time} cpu${e.vcpu} ${e.exit.kind.padEnd(KIND_COLUMN)} ${details(e)}  ${where}`;
}

function details(e: TraceEvent): string {
  const exit = e.exit;
  const dev = `dev=${e.device ?? 'unassigned'}`;
  switch (exit.kind) {
    case 'io':
      return `${exit.direction.padEnd(3)} port=0x${exit.port.toString(16)} size=${exit.size} count=${exit.count} data=${formatData(e.data, exit.size)} ${dev}`;
    case 'mmio':
      return `${(exit.isWrite ? 'write' : 'read').padEnd(5)} addr=0x${exit.physAddr.toString(16)} len=${exit.len} data=${formatData(e.data, exit.len)} ${dev}`;
    case 'hlt':
      return reason(KVM_EXIT_HLT);
    case 'shutdown':
      return reason(KVM_EXIT_SHUTDOWN);
    case 'intr':
      return reason(KVM_EXIT_INTR);
    case 'internal-error': {
      const what = KVM_INTERNAL_ERROR_NAMES[exit.suberror];
      const data = exit.data.length ? ` data=${exit.data.map((d) => `0x${d.toString(16)}`).join(',')}` : '';
      return `suberror=${exit.suberror}${what ? ` (${what})` : ''}${data}`;
    }
    case 'fail-entry':
      return `${reason(KVM_EXIT_FAIL_ENTRY)} hw_reason=0x${exit.hardwareEntryFailureReason.toString(16)} cpu=${exit.cpu}`;
    case 'debug':
      return (
        `${reason(KVM_EXIT_DEBUG)} exception=${DEBUG_EXCEPTION_NAMES[exit.exception] ?? exit.exception} ` +
        `pc=0x${exit.pc.toString(16)} dr6=0x${exit.dr6.toString(16)} dr7=0x${exit.dr7.toString(16)}`
      );
    case 'unknown':
      return `${reason(exit.exitReason)} hw_reason=0x${exit.hardwareExitReason.toString(16)}`;
    default: {
      const never: never = exit;
      throw new Error(`unreachable exit ${JSON.stringify(never)}`);
    }
  }
}

const reason = (exitReason: number): string => `reason=${KVM_EXIT_NAMES[exitReason] ?? exitReason}`;

/** The data as little-endian values of `size` bytes each; see the format at the top. */
export function formatData(data: Uint8Array | undefined, size: number): string {
  if (!data || !data.length || size <= 0) return '-';
  // Whole elements only, so a value is never cut in half.
  const elements = Math.min(Math.ceil(data.length / size), Math.max(1, Math.floor(TRACE_DATA_MAX_BYTES / size)));
  const values: string[] = [];
  for (let i = 0; i < elements; i++) {
    const element = data.subarray(i * size, (i + 1) * size);
    values.push(
      Array.from(element, (b) => b.toString(16).padStart(2, '0'))
        .reverse()
        .join(''),
    );
  }
  const shown = Math.min(elements * size, data.length);
  const more = data.length - shown;
  return `${values.join(size > 1 ? ',' : '')}${more ? `…+${more}` : ''}`;
}
