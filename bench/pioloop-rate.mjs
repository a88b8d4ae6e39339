#!/usr/bin/env node
// Exits per second of guests/build/pioloop.bin (or the image given after N) under runGuest(),
// median of N runs, as JSON. Run by bench/run.mjs in a process of its own with TSKVM_BACKEND=ffi
// or addon (a process picks its backend once).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from './stats.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const rounds = Number(process.argv[2] ?? 5);
const { runGuest } = await import(path.join(root, 'dist', 'index.js'));
const image = process.argv[3] ?? path.join(root, 'guests', 'build', 'pioloop.bin');
const EXITS = 200_001;

await runGuest({ image }); // warm-up
const rates = [];
for (let i = 0; i < rounds; i++) {
  const r = await runGuest({ image });
  rates.push(EXITS / (r.durationMs / 1000));
}
console.log(JSON.stringify({ median: median(rates) }));
