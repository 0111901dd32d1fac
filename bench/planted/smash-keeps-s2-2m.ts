// Shallow: the IO S2 is never cut when the RMP entry under it is PSMASHed. A trusted device in
// RUN keeps a 2M S2 leaf over 4K RMP entries, which its DMA fails on (S2[2M] -- [2M] --> RMP[4K]).
import { definePlantedBug } from './types.ts';

export default definePlantedBug({
  flag: 'smash-keeps-s2-2m',
  class: 'shallow',
  side: 'host',
  description: 'the smash handler never cuts the IO S2 leaf: a 2M S2 leaf stays over 4K RMP entries',
  oracle: 'io-s2-rmp-size',
  // A 4K accept inside a fresh 2M folio: KVM builds a 2M RMP entry, the 4K PVALIDATE hits
  // SIZEMISMATCH and KVM PSMASHes it.
  minimal: [
    { op: 'tdi_accept', dev: 0 },
    { op: 'accept', gpa: 0x401000, size: '4K' },
  ],
});
