// A copy of the linux-2m-pool guest policy (src/policies/linux-2m-pool.ts) with the guest-side
// planted bugs, each behind its own flag. With no flag it behaves exactly like linux-2m-pool: the
// hook it adds (conversionSteps) returns Linux's defaults.

import { SZ_2M, SZ_4K, alignDown, alignUp } from '../../src/model/size.ts';
import type { ConversionStep, GuestContext, GuestPolicy } from '../../src/policies/types.ts';
import type { BugFlag } from './types.ts';

const TOP_RESERVED = 5 * SZ_4K;

/** Per-case state, kept where the policy API keeps it (GuestContext.state). */
interface GuestState {
  pool: { start: number; end: number };
}

function stateOf(ctx: GuestContext): GuestState {
  const state = ctx.state as Partial<GuestState>;
  state.pool ??= { start: 0, end: 0 };
  return state as GuestState;
}

/** The conversion holds a 2M PSC entry outside the boot pool: a 2M-aligned 2M chunk of its range. */
function has2MEntry(state: GuestState, request: { gpa: number; len: number }): boolean {
  const first = alignUp(request.gpa, SZ_2M);
  if (first + SZ_2M > request.gpa + request.len) return false;
  return first < state.pool.start || first >= state.pool.end;
}

export function plantedGuestPolicy(flag?: BugFlag): GuestPolicy {
  const on = (candidate: BugFlag): boolean => flag === candidate;
  return {
    name: flag === undefined ? 'linux-2m-pool (planted copy)' : `linux-2m-pool+${flag}`,
    description: flag === undefined ? 'copy of linux-2m-pool with no planted bug (the control)' : `copy of linux-2m-pool with planted bug ${flag}`,

    swiotlbPool(ctx, request) {
      const bytes = alignUp(request.bytes, SZ_2M);
      const top = Math.min(request.guestMemory, 4 * 1024 ** 3);
      const base = Math.max(0, alignDown(top - TOP_RESERVED - bytes, SZ_2M));
      stateOf(ctx).pool = { start: base, end: base + bytes };
      return { base, bytes, forAlloc: true };
    },

    atomicPoolBytes() {
      return 0;
    },

    coherentSource(_ctx, request) {
      // Bug coherent-private-for-atomic: a GFP_ATOMIC request for an untrusted device is served
      // from private pages (the atomic pool is gone, and the fallback forgot to decrypt).
      if (on('coherent-private-for-atomic') && request.atomic && !request.accepted) return 'private';
      // Bug coherent-pool-for-accepted: an accepted TIO device also gets shared pool memory,
      // which its private-path DMA cannot reach.
      if (on('coherent-pool-for-accepted')) return 'swiotlb';
      return request.accepted ? 'private' : 'swiotlb';
    },

    conversionSteps(ctx, request): readonly ConversionStep[] {
      // Bug rescind-skipped-for-2m: the rescind loop skips 2M entries (it only walks 4K pages),
      // so a whole 2M region goes to the host still validated. The request carries the caller's
      // range, so the policy sees the 2M entry without tracking pageSize calls.
      if (on('rescind-skipped-for-2m') && request.to === 'shared' && has2MEntry(stateOf(ctx), request)) return ['psc'];
      // Bug validate-before-psc: set_memory_encrypted() validates before the host has made the
      // pages private (the order of oak PR 4218's bug), racing the host's RMPUPDATE.
      if (on('validate-before-psc') && request.to === 'private' && request.purpose === 'convert') return ['validate', 'psc'];
      return request.to === 'shared' ? ['rescind', 'psc'] : ['psc', 'validate'];
    },
  };
}
