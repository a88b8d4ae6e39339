#!/usr/bin/env node
// The tskvm command: the bundled CLI (dist/bundle/cli.cjs, one file instead of ~130 modules,
// loaded with the V8 code cache the build made beside it; see scripts/bundle.mjs and
// src/cli/code-cache.cts), or the tsc output's when no bundle was built. CommonJS (bin/package.json):
// an entry that is no ES module starts without Node's ES module loader.
'use strict';
const path = require('node:path');
const { loadBundle } = require('../dist/cli/code-cache.cjs');

const bundle = path.join(__dirname, '..', 'dist', 'bundle', 'cli.cjs');

/** The CLI's module: the bundle's exports, or the tsc output's when there is no bundle. */
function cli() {
  try {
    return Promise.resolve(loadBundle(bundle).exports);
  } catch (err) {
    // Only a missing bundle falls back; a bundle that is there but broken says so.
    if (err?.code !== 'ENOENT' || err.path !== bundle) throw err;
    return import('../dist/cli/launch.js');
  }
}

cli().then((module) => module.launch(process.argv.slice(2)));
