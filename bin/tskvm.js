#!/usr/bin/env node
import { main, exit } from '../dist/cli/main.js';

await exit(await main(process.argv.slice(2)));
