#!/usr/bin/env node
/**
 * Launch benchmark: what a user who runs one small guest from the command line pays, whole
 * processes from spawn to exit, against references measured in the same run (ratios, never
 * pass/fail timings). Every round runs each command once, in turn, so that load from elsewhere
 * hits all of them alike; figures are medians over the rounds.
 *   1. `tskvm run oneexit.bin` (one exit, then debug-exit 7) against `node -e 0` (Node's own
 *      start), against bench/launch-floor.cjs (Node running the same guest with the addon and
 *      nothing else: the floor of any VMM in Node) and against bench/kvm-loop.c on the same guest
 *      (a C VMM's launch).
 *   2. `tskvm run pioloop.bin` (200,001 PIO exits) against the C loop, start-up included: the
 *      median of each round's own ratio, with its quartiles, beside the ratio of the medians.
 *   3. Peak RSS (ru_maxrss, by /usr/bin/time when it is installed) of one-vCPU runs.
 *   4. Where a one-exit launch goes (bench/launch-stages.cjs, the bin with clocks): Node's own
 *      start-up, loading the bundle, the command itself, and the exit's tail, against `node -e`'s.
 * Options: --rounds N (default 15), --json (one JSON object on stdout instead of the table),
 * --compare DIR (also time DIR/bin/tskvm.js, another build of tskvm, in the same rounds: a
 * before/after of a change on a loaded host).
 * Prints the load average with the figures: other work on the host moves every one of them.
 * Every process runs without NODE_EXTRA_CA_CERTS (bench/env.mjs: Node parses that file at every
 * start); where the caller has it set, `node -e 0` with it is timed too.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildCLoop, loopBinary } from './c-loop.mjs';
import { benchEnv, extraCaCerts } from './env.mjs';
import { median, quartiles } from './stats.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '15' }, json: { type: 'boolean', default: false }, compare: { type: 'string' } },
});
const rounds = Math.max(10, Number(values.rounds));

const guest = (name) => path.join(root, 'guests', 'build', `${name}.bin`);
const cli = path.join(root, 'bin', 'tskvm.js');
const TIME = '/usr/bin/time';

/** The commands, each with the exit status it must end with (a run that fails is no figure). */
const COMMANDS = {
  nodeEmpty: { argv: [process.execPath, '-e', '0'], status: 0 },
  nodeFloor: { argv: [process.execPath, path.join(root, 'bench', 'launch-floor.cjs')], status: 7 },
  cliOneExit: { argv: [process.execPath, cli, 'run', guest('oneexit')], status: 7 },
  cOneExit: { argv: [loopBinary, guest('oneexit')], status: 7 },
  cliPioloop: { argv: [process.execPath, cli, 'run', guest('pioloop')], status: 0 },
  cPioloop: { argv: [loopBinary, guest('pioloop')], status: 0 },
};
// Every command runs without NODE_EXTRA_CA_CERTS (bench/env.mjs); where the caller has it, Node's
// start with it is timed too.
if (extraCaCerts !== undefined) COMMANDS.nodeEmptyWithCa = { argv: [process.execPath, '-e', '0'], status: 0, env: process.env };
if (values.compare !== undefined) {
  const other = path.resolve(values.compare, 'bin', 'tskvm.js');
  COMMANDS.compareOneExit = { argv: [process.execPath, other, 'run', guest('oneexit')], status: 7 };
  COMMANDS.comparePioloop = { argv: [process.execPath, other, 'run', guest('pioloop')], status: 0 };
}

/** Clock ticks per second of /proc's times (USER_HZ: 100 on every Linux/x86-64 kernel). */
const USER_HZ = 100;

/** CPU milliseconds (user + system) of this process's waited-for children so far: cutime + cstime in /proc/self/stat. */
function childrenCpuMs() {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 16 and 17 of proc(5), counted from 1 with pid and comm first: index 13 and 14 here.
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / USER_HZ;
}

/** Milliseconds from spawn to exit of one whole process, and the CPU time it used. */
function timeOnce(name) {
  const { argv, status, env = benchEnv } = COMMANDS[name];
  const cpu0 = childrenCpuMs();
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', env });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== status) throw new Error(`${argv.join(' ')}: exit ${r.status ?? r.signal}, wanted ${status}: ${r.stderr}`);
  return { ms, cpuMs: childrenCpuMs() - cpu0 };
}

/** Peak RSS (KiB) of one run, from /usr/bin/time's %M (the child's ru_maxrss). */
function peakRss(name, dir) {
  const { argv, status, env = benchEnv } = COMMANDS[name];
  const out = path.join(dir, `${name}.rss`);
  const r = spawnSync(TIME, ['-f', '%M', '-o', out, ...argv], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', env });
  if (r.status !== status) throw new Error(`${argv.join(' ')} under ${TIME}: exit ${r.status ?? r.signal}: ${r.stderr}`);
  return Number(readFileSync(out, 'utf8').trim().split('\n').pop());
}

/** Node's clock at three points of a `tskvm run oneexit.bin` (bench/launch-stages.cjs), and the wall time after the last. */
function stagesOnce() {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [path.join(root, 'bench', 'launch-stages.cjs'), 'run', guest('oneexit')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    env: benchEnv,
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 7) throw new Error(`launch-stages.cjs: exit ${r.status ?? r.signal}: ${r.stderr}`);
  const t = JSON.parse(r.stderr.trim().split('\n').pop());
  if (t.cache !== 'accepted') throw new Error(`launch-stages.cjs: the code cache was ${t.cache} (rebuild: npm run build:ts)`);
  return { start: t.started, load: t.loaded - t.started, command: t.exit - t.loaded, tail: wall - t.exit };
}

/** The same tail for `node -e` with an 'exit' listener: what Node's own exit costs. */
function nodeTailOnce() {
  const script = "process.on('exit', () => require('node:fs').writeSync(2, String(process.uptime() * 1000)))";
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', env: benchEnv });
  return Number(process.hrtime.bigint() - t0) / 1e6 - Number(r.stderr);
}

function main() {
  buildCLoop();
  if (!existsSync(guest('oneexit')) || !existsSync(path.join(root, 'dist', 'cli', 'main.js'))) {
    throw new Error('build first: npm run build:ts && npm run build:guests');
  }
  const names = Object.keys(COMMANDS);
  for (const name of names) timeOnce(name); // warm-up: page cache, the C loop's binary
  const times = Object.fromEntries(names.map((name) => [name, []]));
  const cpu = Object.fromEntries(names.map((name) => [name, 0]));
  const loads = [];
  for (let i = 0; i < rounds; i++) {
    // Rotate the order too, so that no command always follows the same one.
    for (let j = 0; j < names.length; j++) {
      const name = names[(i + j) % names.length];
      const t = timeOnce(name);
      times[name].push(t.ms);
      cpu[name] += t.cpuMs;
    }
    loads.push(loadavg()[0]);
  }
  const med = Object.fromEntries(names.map((name) => [name, median(times[name])]));
  // CPU time moves less with the load than wall time does; /proc counts it in 10 ms ticks, so it is a mean over the rounds.
  const cpuMean = Object.fromEntries(names.map((name) => [name, cpu[name] / rounds]));
  const rss = {};
  if (existsSync(TIME)) {
    const dir = mkdtempSync(path.join(tmpdir(), 'tskvm-launch-'));
    try {
      for (const name of ['nodeEmpty', 'nodeEmptyWithCa', 'cliOneExit', 'cliPioloop', 'cPioloop', 'compareOneExit', 'comparePioloop']) {
        if (!COMMANDS[name]) continue;
        const samples = [];
        for (let i = 0; i < 5; i++) samples.push(peakRss(name, dir));
        rss[name] = median(samples);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const stages = { start: [], load: [], command: [], tail: [], nodeTail: [] };
  for (let i = 0; i < rounds; i++) {
    const t = stagesOnce();
    for (const key of ['start', 'load', 'command', 'tail']) stages[key].push(t[key]);
    stages.nodeTail.push(nodeTailOnce());
  }
  const stageMs = Object.fromEntries(Object.entries(stages).map(([key, samples]) => [key, median(samples)]));
  const report = {
    rounds,
    loadAverage: { min: Math.min(...loads), max: Math.max(...loads), median: median(loads) },
    medianMs: med,
    meanCpuMs: cpuMean,
    cliOverNodeMs: med.cliOneExit - med.nodeEmpty,
    cliOverNodeRatio: med.cliOneExit / med.nodeEmpty,
    floorOverNodeMs: med.nodeFloor - med.nodeEmpty,
    cliOverFloorMs: med.cliOneExit - med.nodeFloor,
    cliOverCRatio: med.cliOneExit / med.cOneExit,
    pioloopSpeedRatio: med.cPioloop / med.cliPioloop,
    // Each round's own ratio (its two runs seconds apart), then their median and quartiles:
    // the host's drift between rounds cancels out of each pair.
    pioloopSpeedPaired: quartiles(times.cPioloop.map((c, i) => c / times.cliPioloop[i])),
    peakRssKiB: rss,
    stagesMs: stageMs,
  };
  if (values.json) {
    console.log(JSON.stringify(report));
    return;
  }
  const ms = (x) => `${x.toFixed(1).padStart(7)} ms`;
  const cpuOf = (name) => `cpu ${cpuMean[name].toFixed(0).padStart(4)} ms`;
  const mib = (kib) => (kib === undefined ? '      -' : `${(kib / 1024).toFixed(1).padStart(5)} MiB`);
  const la = report.loadAverage;
  console.log(`Launch, whole processes, median of ${rounds} interleaved rounds (load average ${la.min.toFixed(2)}-${la.max.toFixed(2)})`);
  console.log(`  node -e 0                        ${ms(med.nodeEmpty)}  ${cpuOf('nodeEmpty')}   peak RSS ${mib(rss.nodeEmpty)}`);
  if (med.nodeEmptyWithCa !== undefined) {
    console.log(
      `  node -e 0 with NODE_EXTRA_CA_CERTS ${ms(med.nodeEmptyWithCa)}  ${cpuOf('nodeEmptyWithCa')}   peak RSS ${mib(rss.nodeEmptyWithCa)}   (the caller's; every other command runs without it: bench/env.mjs)`,
    );
  }
  console.log(
    `  Node + the addon, one KVM_RUN    ${ms(med.nodeFloor)}  ${cpuOf('nodeFloor')}   (bench/launch-floor.cjs: the floor of a VMM in Node, ${report.floorOverNodeMs.toFixed(1)} ms above node -e 0)`,
  );
  console.log(`  C loop, oneexit.bin              ${ms(med.cOneExit)}  ${cpuOf('cOneExit')}`);
  console.log(
    `  tskvm run oneexit.bin            ${ms(med.cliOneExit)}  ${cpuOf('cliOneExit')}   peak RSS ${mib(rss.cliOneExit)}   (target <= 50 MiB)`,
  );
  console.log(
    `  tskvm over node -e 0             ${ms(report.cliOverNodeMs)}   ratio ${report.cliOverNodeRatio.toFixed(2)}   (target: within 20 ms)`,
  );
  console.log(`  tskvm over that floor            ${ms(report.cliOverFloorMs)}   (what tskvm's own code costs a launch)`);
  console.log(`  tskvm / C loop launch            ratio ${report.cliOverCRatio.toFixed(2)}`);
  console.log(`  C loop, pioloop.bin (200k exits) ${ms(med.cPioloop)}  ${cpuOf('cPioloop')}   peak RSS ${mib(rss.cPioloop)}`);
  console.log(`  tskvm run pioloop.bin            ${ms(med.cliPioloop)}  ${cpuOf('cliPioloop')}   peak RSS ${mib(rss.cliPioloop)}`);
  const paired = report.pioloopSpeedPaired;
  console.log(
    `  speed tskvm CLI / C, start-up in ratio ${paired.median.toFixed(3)} paired by round (spread ${paired.q1.toFixed(3)}-${paired.q3.toFixed(3)}; ratio of the medians ${report.pioloopSpeedRatio.toFixed(3)})   (target >= 0.95)`,
  );
  console.log(`  where tskvm run oneexit.bin goes (bench/launch-stages.cjs; medians; Node's clock starts after exec):`);
  console.log(`    Node's start-up, to the bin     ${ms(stageMs.start)}`);
  console.log(`    loading the bundle (its cache)  ${ms(stageMs.load)}`);
  console.log(`    the command: parse, build, run  ${ms(stageMs.command)}`);
  console.log(`    the exit's tail, to the wait    ${ms(stageMs.tail)}   (node -e: ${stageMs.nodeTail.toFixed(1)} ms)`);
  if (values.compare !== undefined) {
    console.log(`  --compare ${values.compare}:`);
    console.log(
      `    run oneexit.bin                ${ms(med.compareOneExit)}  ${cpuOf('compareOneExit')}   peak RSS ${mib(rss.compareOneExit)}`,
    );
    console.log(
      `    run pioloop.bin                ${ms(med.comparePioloop)}  ${cpuOf('comparePioloop')}   peak RSS ${mib(rss.comparePioloop)}`,
    );
  }
}

main();
