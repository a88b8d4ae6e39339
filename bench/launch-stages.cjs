// bin/tskvm.js with clocks (bench/launch.mjs --stages): loads the CLI's bundle as the bin does,
// with its code cache, runs the command line, and at Node's 'exit' event writes to stderr, as one
// JSON line, process.uptime() in ms at three points: this script's start (Node's own start-up),
// the bundle loaded (reading it and its cache, V8's deserialisation, the bundle's top level), and
// the 'exit' event (the command: parsing, building the machine, the run, the results). The
// caller's wall time from spawn to wait, less the last, is the exit's tail.
'use strict';
const started = process.uptime();
const { writeSync } = require('node:fs');
const path = require('node:path');
const { loadBundle } = require('../dist/cli/code-cache.cjs');

// The bundle bin/tskvm.js loads for this command line: run.cjs for `run`, cli.cjs for the others.
const bundle = loadBundle(path.join(__dirname, '..', 'dist', 'bundle', process.argv[2] === 'run' ? 'run.cjs' : 'cli.cjs'));
const loaded = process.uptime();
process.on('exit', () => {
  const ms = (s) => Math.round(s * 1e5) / 100;
  writeSync(2, `${JSON.stringify({ started: ms(started), loaded: ms(loaded), exit: ms(process.uptime()), cache: bundle.cache })}\n`);
});
bundle.exports.launch(process.argv.slice(2));
