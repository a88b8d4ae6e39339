#!/usr/bin/env node
// The tskvm command: the bundled CLI (dist/bundle/cli.js and the chunks beside it, a few files
// instead of ~130 modules; see scripts/bundle.mjs), or the tsc output's when no bundle was built.
let cli;
try {
  cli = await import('../dist/bundle/cli.js');
} catch (err) {
  // Only a missing bundle falls back; a bundle that is there but broken says so.
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.url).endsWith('/dist/bundle/cli.js')) throw err;
  cli = await import('../dist/cli/launch.js');
}

await cli.launch(process.argv.slice(2));
