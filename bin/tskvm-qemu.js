#!/usr/bin/env node
// tskvm-qemu: qemu-system-x86_64's command line over tskvm (docs/qemu-frontend.md). From the
// command lines' bundle (dist/bundle/cli.cjs, shared with bin/tskvm.js and loaded with its V8
// code cache: scripts/bundle.mjs, src/cli/code-cache.cts), or the tsc output's when no bundle was
// built. CommonJS (bin/package.json), as bin/tskvm.js.
'use strict';
const path = require('node:path');
const { loadBundle } = require('../dist/cli/code-cache.cjs');

const bundle = path.join(__dirname, '..', 'dist', 'bundle', 'cli.cjs');

/** The front end's module (src/qemu/main.ts): from the bundle, or the tsc output's when there is no bundle. */
function qemu() {
  try {
    return loadBundle(bundle).exports.qemu();
  } catch (err) {
    if (err?.code !== 'ENOENT' || err.path !== bundle) throw err;
    return import('../dist/qemu/main.js');
  }
}

qemu().then(async (module) => module.exit(await module.qemuMain(process.argv.slice(2))));
