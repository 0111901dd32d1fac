// Worker threads start without the tsx loader the main thread registered: register it, then run
// the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
