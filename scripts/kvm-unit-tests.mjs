#!/usr/bin/env node
// kvm-unit-tests parity: runs the suite's own ./run_tests.sh against QEMU and against tskvm's
// QEMU-compatible front end (bin/tskvm-qemu.js), then prints the per-test table the README gives.
// kvm-unit-tests is GPL-2 and never part of this repository: fetch and build it yourself
// (git clone https://gitlab.com/kvm-unit-tests/kvm-unit-tests && ./configure && make).
//
//   node scripts/kvm-unit-tests.mjs run KUT_DIR qemu|tskvm OUT   run the suite, its summary to OUT
//   node scripts/kvm-unit-tests.mjs compare QEMU_OUT TSKVM_OUT   print the markdown table
import { spawn } from 'node:child_process';
import { cpSync, createWriteStream, existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FRONT_END = path.join(ROOT, 'bin', 'tskvm-qemu.js');
// ANSI colour codes run_tests.sh puts around PASS/FAIL/SKIP.
const ANSI = new RegExp(`${String.fromCharCode(0x1b)}\\[[0-9;]*m`, 'g');

function usage() {
  process.stderr.write('usage: kvm-unit-tests.mjs run KUT_DIR qemu|tskvm OUT\n       kvm-unit-tests.mjs compare QEMU_OUT TSKVM_OUT\n');
  process.exit(2);
}

/** One line of run_tests.sh's summary: `PASS name (detail)`; a timeout is reported as a FAIL. */
export function parseSummary(text) {
  const results = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.replace(ANSI, '').trim();
    const m = /^(PASS|FAIL|SKIP)\s+(\S+)\s*(?:\((.*)\))?/.exec(line);
    if (!m) continue;
    const [, verdict, name, detail = ''] = m;
    const status = verdict === 'FAIL' && /^timeout\b/.test(detail) ? 'TIMEOUT' : verdict;
    results.set(name, { status, detail });
  }
  return results;
}

function run(kutDir, which, out) {
  if (!existsSync(path.join(kutDir, 'run_tests.sh'))) {
    process.stderr.write(`${kutDir} has no run_tests.sh: give a built kvm-unit-tests tree\n`);
    process.exit(2);
  }
  // run_tests.sh writes logs/ in its tree: each VMM gets its own copy.
  const copy = `${path.resolve(kutDir)}-${which}`;
  rmSync(copy, { recursive: true, force: true });
  cpSync(kutDir, copy, { recursive: true });
  rmSync(path.join(copy, 'logs'), { recursive: true, force: true });
  const env = { ...process.env, ACCEL: 'kvm' };
  if (which === 'tskvm') env.QEMU = FRONT_END;
  else if (which !== 'qemu') usage();
  const started = Date.now();
  const sink = createWriteStream(out);
  const child = spawn('./run_tests.sh', [], { cwd: copy, env, stdio: ['ignore', 'pipe', 'inherit'] });
  child.stdout.on('data', (chunk) => {
    sink.write(chunk);
    process.stdout.write(chunk);
  });
  child.on('close', (code) => {
    sink.end(`# ${which}: run_tests.sh exited ${code} after ${Math.round((Date.now() - started) / 1000)} s; logs in ${copy}/logs\n`);
  });
}

function compare(qemuOut, tskvmOut) {
  const qemu = parseSummary(readFileSync(qemuOut, 'utf8'));
  const tskvm = parseSummary(readFileSync(tskvmOut, 'utf8'));
  const names = [...new Set([...qemu.keys(), ...tskvm.keys()])];
  const cell = (r) => (r ? `${r.status}${r.detail ? ` (${r.detail.replace(/\|/g, '/')})` : ''}` : '—');
  const rows = ['| test | QEMU | tskvm |', '|---|---|---|'];
  const regressions = [];
  for (const name of names) {
    const q = qemu.get(name);
    const t = tskvm.get(name);
    rows.push(`| ${name} | ${cell(q)} | ${cell(t)} |`);
    if (q?.status === 'PASS' && t?.status !== 'PASS') regressions.push(name);
  }
  const count = (map) => {
    const c = { PASS: 0, SKIP: 0, FAIL: 0, TIMEOUT: 0 };
    for (const r of map.values()) c[r.status]++;
    return `${c.PASS} PASS, ${c.SKIP} SKIP, ${c.FAIL} FAIL, ${c.TIMEOUT} TIMEOUT`;
  };
  process.stdout.write(`${rows.join('\n')}\n\nQEMU: ${count(qemu)}\ntskvm: ${count(tskvm)}\n`);
  process.stdout.write(
    regressions.length
      ? `passes under QEMU but not tskvm: ${regressions.join(', ')}\n`
      : 'every test that passes under QEMU passes under tskvm\n',
  );
  process.exitCode = regressions.length ? 1 : 0;
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'run' && args.length === 3) run(args[0], args[1], args[2]);
else if (mode === 'compare' && args.length === 2) compare(args[0], args[1]);
else usage();
