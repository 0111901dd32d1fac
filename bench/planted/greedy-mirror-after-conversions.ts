// Deep: once the VM has made four small conversions to shared, the IO S2 rebuild on TDI attach
// maps private memory greedily (2M wherever aligned) instead of following the RMP; a region whose
// RMP was smashed and that is all private again gets a 2M S2 leaf over 4K entries.
import { definePlantedBug } from './types.ts';

export default definePlantedBug({
  flag: 'greedy-mirror-after-conversions',
  class: 'deep',
  side: 'host',
  description: 'after four small conversions to shared, the attach rebuild of the private S2 ignores the RMP sizes',
  oracle: 'io-s2-rmp-size',
  // An unaligned 512-page share is three PSC batches (253 + 253 + 6 entries), so three
  // conversions; a fourth share; a 4K accept leaves a fresh region all private under 4K RMP
  // entries (2M folio, SIZEMISMATCH, PSMASH); the attach then maps it with one 2M leaf. (The
  // first hand-written sequence had 6 ops: the minimizer found this shorter one.)
  minimal: [
    { op: 'share', gpa: 0x401000, pages: 512 },
    { op: 'share', gpa: 0x801000, pages: 1 },
    { op: 'accept', gpa: 0xc01000, size: '4K' },
    { op: 'tdi_accept', dev: 0 },
  ],
});
