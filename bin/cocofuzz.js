#!/usr/bin/env node
// cocofuzz runs its TypeScript sources through tsx's loader instead of a build step: the same
// loader then serves user plugins written in TypeScript (--host-policy ./p.ts, --oracle ./o.ts),
// and `npm ci` leaves nothing stale to rebuild.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
