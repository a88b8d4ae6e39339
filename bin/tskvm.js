#!/usr/bin/env node
import { main, exit } from '../dist/cli.js';

await exit(await main(process.argv.slice(2)));
