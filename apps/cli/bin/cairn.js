#!/usr/bin/env node
// Launcher for `npx cairn` (after `npm ci && npm run build`): runs the bundled command.
import { main } from '../dist/bundle/main.js';

process.exitCode = await main(process.argv.slice(2));
