// A deliberately broken host policy (for the guest-alive oracle's tests): KVM answers a SIZEM
// #NPF (a 4K PVALIDATE on a 2M RMP entry) by returning to the guest without PSMASH, so the
// guest's PVALIDATE faults forever (research/amd-snp.md section 7 item 7). Every other fault gets
// KVM's default handling.

import { defineHostPolicy } from 'cocofuzz';

export default defineHostPolicy({
  name: 'broken-sizem-ignored',
  description: 'returns from a SIZEM #NPF without PSMASH: the guest livelocks on its 4K PVALIDATE',
  privateFault(ctx, fault) {
    if (fault.kind === 'sizem') return;
    ctx.kvm.defaultPrivateFault(fault);
  },
});
