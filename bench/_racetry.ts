import { benchRace } from './race.ts';
const r = await benchRace({ seeds: Number(process.argv[2] ?? 5), budgetOps: Number(process.argv[3] ?? 20000) });
console.log(JSON.stringify({ on: { ...r.on, trialsDetail: r.on.trialsDetail.map((t) => [t.found, t.ops, t.cases]) } }));
