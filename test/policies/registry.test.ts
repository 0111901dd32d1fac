// The built-in policies: their names are a contract (CLI, repro files), each file says in its
// header which real code, patch or proposal it models, and each is a plain data-like object.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { defineGuestPolicy, defineHostPolicy, guestPolicies, hostPolicies } from '../../src/policies/index.ts';

describe('policy registries', () => {
  it('hold exactly the built-in names', () => {
    expect(Object.keys(hostPolicies).sort()).toEqual(['cut-on-convert', 'fw-atomic-smash', 'kvm-4k', 'kvm-iommu-4k', 'quiesce-dma', 'split-then-smash', 'vfio-static']);
    expect(Object.keys(guestPolicies).sort()).toEqual(['double-validate', 'linux', 'linux-2m-pool']);
    for (const [name, policy] of [...Object.entries(hostPolicies), ...Object.entries(guestPolicies)]) {
      expect(policy.name).toBe(name);
      expect(policy.description.length).toBeGreaterThan(20);
    }
  });

  it('name the code or proposal they model in a header comment', () => {
    for (const name of [...Object.keys(hostPolicies), ...Object.keys(guestPolicies)]) {
      const text = readFileSync(new URL(`../../src/policies/${name}.ts`, import.meta.url), 'utf8');
      const header = text.split('\n').filter((line) => line.startsWith('//')).join('\n');
      expect(header).toMatch(new RegExp(`^// ${name}:`));
      expect(header).toMatch(/lore|PR|commit|\(\)|issue/);
    }
  });

  it('offers identity helpers for plugin authors', () => {
    const host = { name: 'h', description: 'd' };
    const guest = { name: 'g', description: 'd' };
    expect(defineHostPolicy(host)).toBe(host);
    expect(defineGuestPolicy(guest)).toBe(guest);
  });
});
