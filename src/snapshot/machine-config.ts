/**
 * The part of a run's configuration a snapshot keeps, because the guest can see it: RAM size,
 * vCPU count, whether the PIC/IOAPIC/PIT are in the kernel, what fw_cfg tells the firmware, the
 * format the image was loaded as, and for a guest booted through tskvm's BIOS its disks and boot
 * order (src/bios/snapshot-config.ts says what, and checks it on restore). A restore rebuilds the
 * machine from it alone: no image, no options that would change what the guest already knows.
 */
import type { FwCfgConfig, FwCfgE820Entry } from '../devices/fw-cfg.js';
import { GUEST_FORMATS, type GuestFormat } from '../loader/guest.js';
import { SnapshotFormatError, type JsonObject, type SnapshotMachine } from './format.js';

/** What a snapshot records of the board (SnapshotMachine.board). */
export interface SnapshotBoard {
  firmware: FwCfgConfig;
  /** How the original image was loaded (the restored run's result reports it again). */
  format: GuestFormat;
  /** A BIOS machine's description (opaque here: the BIOS checks it when it is brought back). */
  bios: JsonObject | undefined;
}

export function describeMachine(machine: {
  memorySize: number;
  cpus: number;
  irqchip: boolean;
  firmware: FwCfgConfig;
  format: GuestFormat;
  /** A BIOS machine's own description (plain data). */
  bios?: object | undefined;
}): SnapshotMachine {
  const f = machine.firmware;
  const firmware: JsonObject = {
    ramSize: f.ramSize,
    cpus: f.cpus,
    ...(f.maxCpus === undefined ? {} : { maxCpus: f.maxCpus }),
    ...(f.cmdline === undefined ? {} : { cmdline: f.cmdline }),
    ...(f.e820 === undefined ? {} : { e820: f.e820.map((e) => ({ base: e.base, length: e.length, type: e.type })) }),
    // Named files are bytes: base64 in JSON.
    ...(f.files === undefined
      ? {}
      : { files: Object.fromEntries(Object.entries(f.files).map(([name, bytes]) => [name, Buffer.from(bytes).toString('base64')])) }),
  };
  const board: JsonObject = { firmware, format: machine.format };
  if (machine.bios) board.bios = JSON.parse(JSON.stringify(machine.bios)) as JsonObject;
  return { memorySize: machine.memorySize, cpus: machine.cpus, irqchip: machine.irqchip, board };
}

/** The board description back from a checked header; SnapshotFormatError if it is not one. */
export function boardFromSnapshot(machine: SnapshotMachine): SnapshotBoard {
  const board = machine.board;
  const fail = (why: string): never => {
    throw new SnapshotFormatError(`it is corrupt: machine.board.${why}`);
  };
  const format = board.format;
  if (typeof format !== 'string' || format === 'auto' || !(GUEST_FORMATS as readonly string[]).includes(format))
    fail(`format is ${JSON.stringify(format)}`);
  const f = board.firmware;
  if (typeof f !== 'object' || f === null || Array.isArray(f)) return fail('firmware is not an object');
  const int = (v: unknown, what: string): number =>
    typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : fail(`firmware.${what} is ${JSON.stringify(v)}`);
  const firmware: FwCfgConfig = { ramSize: int(f.ramSize, 'ramSize'), cpus: int(f.cpus, 'cpus') };
  if (f.maxCpus !== undefined) firmware.maxCpus = int(f.maxCpus, 'maxCpus');
  if (f.cmdline !== undefined) firmware.cmdline = typeof f.cmdline === 'string' ? f.cmdline : fail('firmware.cmdline is not a string');
  if (f.e820 !== undefined) {
    if (!Array.isArray(f.e820)) fail('firmware.e820 is not an array');
    firmware.e820 = (f.e820 as unknown[]).map((e, i): FwCfgE820Entry => {
      const entry = (typeof e === 'object' && e !== null ? e : {}) as Record<string, unknown>;
      return {
        base: int(entry.base, `e820[${i}].base`),
        length: int(entry.length, `e820[${i}].length`),
        type: int(entry.type, `e820[${i}].type`),
      };
    });
  }
  if (f.files !== undefined) {
    if (typeof f.files !== 'object' || f.files === null || Array.isArray(f.files)) fail('firmware.files is not an object');
    firmware.files = Object.fromEntries(
      Object.entries(f.files as Record<string, unknown>).map(([name, data]) => [
        name,
        typeof data === 'string' ? new Uint8Array(Buffer.from(data, 'base64')) : fail(`firmware.files["${name}"] is not base64`),
      ]),
    );
  }
  const bios = board.bios;
  if (bios !== undefined && (typeof bios !== 'object' || bios === null || Array.isArray(bios))) fail('bios is not an object');
  return { firmware, format: format as GuestFormat, bios: bios as JsonObject | undefined };
}
