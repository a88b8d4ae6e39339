/**
 * `--stats`: exits counted by reason and by device/port, with the time spent in the exit
 * handlers, in KVM_RUN (the guest's run time, kernel-side exit handling included) and overall.
 * Each vCPU thread keeps one ExitStats and posts its toJSON() (plain data) to the main thread,
 * which can merge several with `merge` and prints formatStatsTable().
 */

/** Exits of one reason (io, mmio, hlt, ...). */
export interface ReasonStatsJson {
  count: number;
  handlerMs: number;
}

/** Exits that went to one device and port ("COM1 (16550A) 0x3fd"), "unassigned", or a non-I/O reason. */
export interface DeviceStatsJson {
  key: string;
  count: number;
  handlerMs: number;
}

export interface ExitStatsJson {
  /** Wall-clock time of the run. */
  wallMs: number;
  /** Time inside KVM_RUN: the guest running, plus what the kernel handles without exiting to us. */
  kvmRunMs: number;
  /** Time in our exit handlers (devices, the loop's decoding). */
  handlerMs: number;
  byReason: Record<string, ReasonStatsJson>;
  /** Most exits first. */
  byDevice: DeviceStatsJson[];
}

const NS_PER_MS = 1e6;
const NS_PER_US = 1e3;
/** JSON keeps nanosecond sums as milliseconds with nanosecond precision. */
const MS_DECIMALS = 6;

const toMs = (ns: number): number => Number((ns / NS_PER_MS).toFixed(MS_DECIMALS));

interface Bucket {
  count: number;
  handlerNs: number;
}

export class ExitStats {
  private readonly reasons = new Map<string, Bucket>();
  private readonly devices = new Map<string, Bucket>();
  private runNs = 0;
  private handlerNs = 0;
  private wallNs = 0;

  /** One exit of `kind`, handled by `key` (device and port, "unassigned", or the reason) in `handlerNs`. */
  record(kind: string, key: string, handlerNs: number): void {
    add(this.reasons, kind, 1, handlerNs);
    add(this.devices, key, 1, handlerNs);
    this.handlerNs += handlerNs;
  }

  /** Time spent in one KVM_RUN call. */
  addRunNs(ns: number): void {
    this.runNs += ns;
  }

  setWallNs(ns: number): void {
    this.wallNs = ns;
  }

  /** Adds another vCPU's statistics; the wall time is the longer of the two (they ran side by side). */
  merge(other: ExitStatsJson): this {
    for (const [kind, r] of Object.entries(other.byReason)) add(this.reasons, kind, r.count, r.handlerMs * NS_PER_MS);
    for (const d of other.byDevice) add(this.devices, d.key, d.count, d.handlerMs * NS_PER_MS);
    this.runNs += other.kvmRunMs * NS_PER_MS;
    this.handlerNs += other.handlerMs * NS_PER_MS;
    this.wallNs = Math.max(this.wallNs, other.wallMs * NS_PER_MS);
    return this;
  }

  static fromJSON(json: ExitStatsJson): ExitStats {
    return new ExitStats().merge(json);
  }

  toJSON(): ExitStatsJson {
    const byReason: Record<string, ReasonStatsJson> = {};
    for (const [kind, b] of byCount(this.reasons)) byReason[kind] = { count: b.count, handlerMs: toMs(b.handlerNs) };
    return {
      wallMs: toMs(this.wallNs),
      kvmRunMs: toMs(this.runNs),
      handlerMs: toMs(this.handlerNs),
      byReason,
      byDevice: byCount(this.devices).map(([key, b]) => ({ key, count: b.count, handlerMs: toMs(b.handlerNs) })),
    };
  }
}

function add(map: Map<string, Bucket>, key: string, count: number, handlerNs: number): void {
  const b = map.get(key);
  if (b) {
    b.count += count;
    b.handlerNs += handlerNs;
  } else {
    map.set(key, { count, handlerNs });
  }
}

/** Most exits first; ties by name, so the order is stable. */
function byCount(map: Map<string, Bucket>): [string, Bucket][] {
  return [...map].sort(([ka, a], [kb, b]) => b.count - a.count || (ka < kb ? -1 : ka > kb ? 1 : 0));
}

const NAME_COLUMN = 28;
const COUNT_COLUMN = 10;
const PERCENT_COLUMN = 8;
const MS_COLUMN = 13;
const PER_EXIT_COLUMN = 13;
const WALL_SHARE_COLUMN = 11;

const percent = (part: number, whole: number): string => (whole > 0 ? `${((part / whole) * 100).toFixed(1)}%` : '-');
const ms = (value: number): string => value.toFixed(3);

/**
 * The `--stats` table, for stderr (ends with a newline). Rows most exits first; `%` is the share
 * of all exits; "other" is wall time outside KVM_RUN and the handlers (thread start, the loop).
 *
 *     exits by reason                    count       %   handler ms  per exit µs
 *       io                                   9   81.8%        0.027        3.000
 *       hlt                                  1    9.1%        0.001        0.500
 *       total                               11  100.0%        0.029        2.636
 *
 *     exits by device/port               count       %   handler ms  per exit µs
 *       COM1 (16550A) 0x3fd                  6   54.5%        0.012        2.000
 *       unassigned                           1    9.1%        0.002        1.500
 *
 *     time                                  ms  % of wall
 *       wall                            10.000     100.0%
 *       guest run time (KVM_RUN)         5.000      50.0%
 *       exit handlers                    0.029       0.3%
 *       other (loop, host)               4.971      49.7%
 */
export function formatStatsTable(json: ExitStatsJson): string {
  const reasons = Object.entries(json.byReason);
  const total = reasons.reduce((n, [, r]) => n + r.count, 0);
  const header = (title: string): string =>
    `${title.padEnd(NAME_COLUMN + 2)}${'count'.padStart(COUNT_COLUMN)}${'%'.padStart(PERCENT_COLUMN)}${'handler ms'.padStart(MS_COLUMN)}${'per exit µs'.padStart(PER_EXIT_COLUMN)}`;
  const row = (name: string, count: number, handlerMs: number): string =>
    `  ${name.padEnd(NAME_COLUMN)}${String(count).padStart(COUNT_COLUMN)}${percent(count, total).padStart(PERCENT_COLUMN)}` +
    `${ms(handlerMs).padStart(MS_COLUMN)}${(count ? ((handlerMs * NS_PER_MS) / NS_PER_US / count).toFixed(3) : '-').padStart(PER_EXIT_COLUMN)}`;
  const timeRow = (name: string, value: number): string =>
    `  ${name.padEnd(NAME_COLUMN)}${ms(value).padStart(COUNT_COLUMN)}${percent(value, json.wallMs).padStart(WALL_SHARE_COLUMN)}`;
  const lines = [header('exits by reason')];
  for (const [kind, r] of reasons) lines.push(row(kind, r.count, r.handlerMs));
  lines.push(row('total', total, json.handlerMs), '', header('exits by device/port'));
  for (const d of json.byDevice) lines.push(row(d.key, d.count, d.handlerMs));
  lines.push(
    '',
    `${'time'.padEnd(NAME_COLUMN + 2)}${'ms'.padStart(COUNT_COLUMN)}${'% of wall'.padStart(WALL_SHARE_COLUMN)}`,
    timeRow('wall', json.wallMs),
    timeRow('guest run time (KVM_RUN)', json.kvmRunMs),
    timeRow('exit handlers', json.handlerMs),
    timeRow('other (loop, host)', Math.max(0, json.wallMs - json.kvmRunMs - json.handlerMs)),
  );
  return `${lines.join('\n')}\n`;
}
