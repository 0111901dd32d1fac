import type { CommandModule } from 'yargs';
import { guestPolicies, hostPolicies } from '../policies/index.ts';
import { DEFAULT_GUEST_POLICY, DEFAULT_HOST_POLICY } from '../ops/config.ts';

export const policiesCommand: CommandModule = {
  command: 'policies',
  describe: 'list the built-in host and guest policies',
  builder: (yargs) => yargs.example('$0 policies', 'names for --host-policy and --guest-policy').example('$0 fuzz --host-policy cut-on-convert --guest-policy linux-2m-pool', 'then pair two'),
  handler: () => {
    const all = [...Object.values(hostPolicies), ...Object.values(guestPolicies)];
    const width = Math.max(...all.map((p) => p.name.length));
    console.log('host policies (--host-policy):');
    for (const p of Object.values(hostPolicies)) console.log(`  ${p.name.padEnd(width)}  ${p.description}${p.name === DEFAULT_HOST_POLICY ? ' [default]' : ''}`);
    console.log('guest policies (--guest-policy):');
    for (const p of Object.values(guestPolicies)) console.log(`  ${p.name.padEnd(width)}  ${p.description}${p.name === DEFAULT_GUEST_POLICY ? ' [default]' : ''}`);
  },
};
