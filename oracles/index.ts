// The built-in oracles, in the order `cocofuzz oracles` lists them and the engine runs them. Each
// file is written exactly as a user's oracle would be: it imports only 'cocofuzz/api'.

import type { Oracle } from 'cocofuzz/api';
import ioS2RmpSize from './io-s2-rmp-size.ts';
import nptRmpSize from './npt-rmp-size.ts';
import rmpWellFormed from './rmp-well-formed.ts';
import dmaLiveness from './dma-liveness.ts';
import dmaIsolation from './dma-isolation.ts';
import noSilentRemap from './no-silent-remap.ts';
import nptIommuCoherence from './npt-iommu-coherence.ts';
import iotlbStale from './iotlb-stale.ts';
import swiotlbSlots from './swiotlb-slots.ts';
import swiotlbShared from './swiotlb-shared.ts';
import conversionOrder from './conversion-order.ts';
import bounceIntegrity from './bounce-integrity.ts';
import dmaAfterFree from './dma-after-free.ts';
import guestAlive from './guest-alive.ts';

export const builtinOracles: Oracle[] = [
  ioS2RmpSize,
  nptRmpSize,
  rmpWellFormed,
  dmaLiveness,
  dmaIsolation,
  noSilentRemap,
  nptIommuCoherence,
  iotlbStale,
  swiotlbSlots,
  swiotlbShared,
  conversionOrder,
  bounceIntegrity,
  dmaAfterFree,
  guestAlive,
];
