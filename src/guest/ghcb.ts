// The guest-host interface of an SNP guest: what the guest asks the hypervisor for through the
// GHCB (page state changes, SVM_VMGEXIT_PSC with struct snp_psc_desc) and what reaches the host
// as an exit without the guest asking (#NPF). The host actor implements it.

import type { Fault } from '../model/types.ts';
import type { PageSize } from '../model/size.ts';

/** VMGEXIT_PSC_MAX_ENTRY (arch/x86/include/asm/sev-common.h). */
export const PSC_MAX_ENTRIES = 253;

/** One entry of struct psc_entry: {cur_page:12, gfn:40, operation:4, pagesize:1}. */
export interface PscEntry {
  gfn: number;
  size: PageSize;
  op: 'private' | 'shared';
  /** 4K pages of the entry already done (the host advances it). */
  curPage: number;
}

/** struct snp_psc_desc: the header's cur_entry / end_entry and the entries. */
export interface PscDesc {
  curEntry: number;
  endEntry: number;
  entries: PscEntry[];
}

export interface Hypervisor {
  /**
   * One SVM_VMGEXIT_PSC: the host processes entries from cur_entry on, advancing cur_entry and
   * cur_page, and may return before the end (the guest then asks again). Returns the error the
   * host reports in sw_exit_info_2, if any.
   */
  psc(desc: PscDesc): string | undefined;
  /** A #NPF exit: the host resolves it (or not) and resumes the guest, which retries. */
  npf(fault: Fault, access: { private: boolean; write: boolean }): void;
  /**
   * What npf() would do for not-present private faults (a PVALIDATE) at `pages` pages from
   * `gpa`, taken one after the other, asked without doing it: the leading pages it would resolve
   * by mapping each at 4K, and nothing else, to hpa + offset. 0 pages where it would do anything
   * else for the first (a policy hook sees each fault, a page to prepare or convert first).
   */
  faultInPlan?(gpa: number, pages: number): { pages: number; hpa: number };
  /**
   * Where npf() would prepare each of `pages` pages from `gpa` at 4K and map it so, and nothing
   * else, for the not-present faults of validating PVALIDATEs: does that for the leading such
   * pages with their PVALIDATEs (Machine.pvalidateFaultIn()) and returns how many (0: the pages
   * go one by one).
   */
  prepareFaultIn?(gpa: number, pages: number): number;
  /** TIO_OP BIND + RUN for an accepted TDI ("ok" or the reason it failed). */
  tdiRun(dev: number): string;
  /** TIO_OP STOP + UNBIND. */
  tdiStop(dev: number): string;
}
