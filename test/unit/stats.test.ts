import { describe, expect, it } from 'vitest';
import { ExitStats, formatStatsTable, type ExitStatsJson } from '../../src/debug/stats.js';

function sample(): ExitStats {
  const stats = new ExitStats();
  for (let i = 0; i < 6; i++) stats.record('io', 'COM1 (16550A) 0x3fd', 2_000);
  for (let i = 0; i < 3; i++) stats.record('io', 'COM1 (16550A) 0x3f8', 5_000);
  stats.record('mmio', 'unassigned', 1_500);
  stats.record('hlt', 'hlt', 500);
  stats.addRunNs(4_000_000);
  stats.addRunNs(1_000_000);
  stats.setWallNs(10_000_000);
  return stats;
}

describe('ExitStats', () => {
  it('counts exits and handler time by reason and by device, most exits first', () => {
    const json = sample().toJSON();
    expect(json).toEqual({
      wallMs: 10,
      kvmRunMs: 5,
      handlerMs: 0.029,
      byReason: { io: { count: 9, handlerMs: 0.027 }, hlt: { count: 1, handlerMs: 0.0005 }, mmio: { count: 1, handlerMs: 0.0015 } },
      byDevice: [
        { key: 'COM1 (16550A) 0x3fd', count: 6, handlerMs: 0.012 },
        { key: 'COM1 (16550A) 0x3f8', count: 3, handlerMs: 0.015 },
        { key: 'hlt', count: 1, handlerMs: 0.0005 },
        { key: 'unassigned', count: 1, handlerMs: 0.0015 },
      ],
    } satisfies ExitStatsJson);
    expect(Object.keys(json.byReason)).toEqual(['io', 'hlt', 'mmio']);
  });

  it('is plain data that survives structured cloning and JSON, and comes back with fromJSON', () => {
    const json = sample().toJSON();
    expect(structuredClone(json)).toEqual(json);
    const back = ExitStats.fromJSON(JSON.parse(JSON.stringify(json)) as ExitStatsJson);
    expect(back.toJSON()).toEqual(json);
  });

  it('merges the statistics of several vCPUs', () => {
    const a = sample();
    const b = new ExitStats();
    b.record('io', 'COM1 (16550A) 0x3f8', 1_000);
    b.record('intr', 'intr', 0);
    b.addRunNs(2_000_000);
    b.setWallNs(12_000_000);
    const merged = a.merge(b.toJSON()).toJSON();
    expect(merged.wallMs).toBe(12);
    expect(merged.kvmRunMs).toBe(7);
    expect(merged.handlerMs).toBe(0.03);
    expect(merged.byReason.io).toEqual({ count: 10, handlerMs: 0.028 });
    expect(merged.byReason.intr).toEqual({ count: 1, handlerMs: 0 });
    expect(merged.byDevice[1]).toEqual({ key: 'COM1 (16550A) 0x3f8', count: 4, handlerMs: 0.016 });
  });

  it('is empty before any exit', () => {
    expect(new ExitStats().toJSON()).toEqual({ wallMs: 0, kvmRunMs: 0, handlerMs: 0, byReason: {}, byDevice: [] });
  });
});

describe('formatStatsTable', () => {
  it('prints counts, shares, handler time and where the wall time went', () => {
    expect(formatStatsTable(sample().toJSON())).toBe(
      [
        'exits by reason                    count       %   handler ms  per exit µs',
        '  io                                   9   81.8%        0.027        3.000',
        '  hlt                                  1    9.1%        0.001        0.500',
        '  mmio                                 1    9.1%        0.002        1.500',
        '  total                               11  100.0%        0.029        2.636',
        '',
        'exits by device/port               count       %   handler ms  per exit µs',
        '  COM1 (16550A) 0x3fd                  6   54.5%        0.012        2.000',
        '  COM1 (16550A) 0x3f8                  3   27.3%        0.015        5.000',
        '  hlt                                  1    9.1%        0.001        0.500',
        '  unassigned                           1    9.1%        0.002        1.500',
        '',
        'time                                  ms  % of wall',
        '  wall                            10.000     100.0%',
        '  guest run time (KVM_RUN)         5.000      50.0%',
        '  exit handlers                    0.029       0.3%',
        '  other (loop, host)               4.971      49.7%',
        '',
      ].join('\n'),
    );
  });

  it('prints an empty run without dividing by zero', () => {
    const text = formatStatsTable(new ExitStats().toJSON());
    expect(text).toContain('  total                                0       -        0.000            -');
    expect(text).toContain('  wall                             0.000          -');
    expect(text).not.toContain('NaN');
  });
});
