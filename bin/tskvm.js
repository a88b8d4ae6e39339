#!/usr/bin/env node
// The tskvm command: the bundled CLI (dist/bundle/cli.cjs, one file instead of ~130 modules,
// loaded with the V8 code cache the build made beside it; see scripts/bundle.mjs and
// src/cli/code-cache.cts), or for `tskvm run` its own smaller bundle (dist/bundle/run.cjs: the
// same, less what only the other commands use), or the tsc output's when no bundle was built.
// CommonJS (bin/package.json): an entry that is no ES module starts without Node's ES module loader.
'use strict';
const path = require('node:path');
const { loadBundle } = require('../dist/cli/code-cache.cjs');

const argv = process.argv.slice(2);
const bundles = path.join(__dirname, '..', 'dist', 'bundle');

/** The CLI's module: the first bundle there is of `names`, or the tsc output's when there is none. */
function cli(names) {
  for (const name of names) {
    const bundle = path.join(bundles, name);
    try {
      return Promise.resolve(loadBundle(bundle).exports);
    } catch (err) {
      // Only a missing bundle falls back; a bundle that is there but broken says so.
      if (err?.code !== 'ENOENT' || err.path !== bundle) throw err;
    }
  }
  return import('../dist/cli/launch.js');
}

cli(argv[0] === 'run' ? ['run.cjs', 'cli.cjs'] : ['cli.cjs']).then((module) => module.launch(argv));
