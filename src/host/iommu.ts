// The VMM's side of the IOMMU (VFIO / iommufd over the iommupt S2 of each device): the helpers a
// host policy uses to keep the IO page tables in line with what the host backs, and the default
// behaviour of today's VFIO (map and unmap exactly what it is told, never split, flush after an
// unmap as iommu_unmap() does through iommu_iotlb_sync()).

import type { Leaf } from '../api.ts';
import type { Machine } from '../model/machine.ts';
import { alignDown, offsetIn, pfnOf, SZ_2M } from '../model/size.ts';
import type { GatheredRange, IoEvent, IommuHelpers } from '../policies/types.ts';
import type { Backing } from './backing.ts';
import type { ActorEnv } from './env.ts';
import { LeafRun } from './leaf-run.ts';
import type { HostFrames } from './frames.ts';
import { cutDownPath } from '../model/cut-path.ts';

export type DeviceViewKind = 'private' | 'shared';

export class Iommu implements IommuHelpers {
  /** Each device's S2 view: a trusted device in RUN sees the private view, the rest the shared one. */
  private readonly views = new Map<number, DeviceViewKind>();

  constructor(
    private readonly machine: Machine,
    private readonly backing: Backing,
    private readonly frames: HostFrames,
    private readonly env: ActorEnv,
  ) {
    for (const device of machine.devices) this.views.set(device.id, 'shared');
  }

  setView(dev: number, view: DeviceViewKind): void {
    this.views.set(dev, view);
  }

  view(dev: number): DeviceViewKind {
    return this.views.get(dev) ?? 'shared';
  }

  /** The devices whose S2 shows private (or shared) memory now. */
  devicesSeeing(shared: boolean): number[] {
    const want: DeviceViewKind = shared ? 'shared' : 'private';
    const out: number[] = [];
    for (const device of this.machine.devices) if (this.view(device.id) === want) out.push(device.id);
    return out;
  }

  /** Whether any device's S2 shows that view now (devicesSeeing() without the list). */
  anySeeing(shared: boolean): boolean {
    const want: DeviceViewKind = shared ? 'shared' : 'private';
    for (const device of this.machine.devices) if (this.view(device.id) === want) return true;
    return false;
  }

  devices(): readonly { id: number; trusted: boolean; view: DeviceViewKind }[] {
    return this.machine.devices.map((d) => ({ id: d.id, trusted: d.trusted, view: this.view(d.id) }));
  }

  defaultIo(event: IoEvent): void {
    switch (event.kind) {
      case 'map':
        for (const dev of event.devices) this.map(dev, event.gpa, event.hpa, event.len);
        return;
      case 'unmap':
        // VFIO hands the range to iommu_unmap() as it is: iommupt never splits a leaf, so a range
        // starting inside a larger leaf fails and the old translation stays (DOMAIN.md, iommupt).
        for (const dev of event.devices) {
          this.env.charge();
          this.machine.ioUnmap(dev, event.gpa, event.len);
          this.machine.iommuFlush(dev);
        }
        return;
      case 'smash':
        // Upstream VFIO does not know about RMP entries.
        return;
      case 'attach':
        this.mirror(event.dev);
        return;
    }
  }

  map(dev: number, gpa: number, hpa: number, len: number): boolean {
    this.env.charge();
    const result = this.machine.ioMap(dev, gpa, hpa, len);
    if (result.error === undefined) return true;
    // iommu_map() unmaps what it installed before the error with iommu_unmap(), which syncs.
    if (result.mapped > 0) this.machine.ioUnmapSynced(dev, gpa, result.mapped);
    return false;
  }

  mapFollowingRmp(dev: number, gpa: number, hpa: number, len: number): boolean {
    let ok = true;
    let done = 0;
    while (done < len) {
      const at = gpa + done;
      const frame = hpa + done;
      const regionEnd = alignDown(at, SZ_2M) + SZ_2M;
      const chunk = Math.min(len - done, regionEnd - at);
      const whole = offsetIn(at, SZ_2M) === 0 && chunk === SZ_2M && offsetIn(frame, SZ_2M) === 0;
      if (whole) {
        const entry = this.machine.rmp.entry(pfnOf(frame));
        if (entry.assigned && entry.size === '2M') {
          ok = this.map(dev, at, frame, SZ_2M) && ok;
        } else {
          // Two halves: no 2M leaf can come out of a 1M range.
          ok = this.map(dev, at, frame, SZ_2M / 2) && ok;
          ok = this.map(dev, at + SZ_2M / 2, frame + SZ_2M / 2, SZ_2M / 2) && ok;
        }
      } else {
        ok = this.map(dev, at, frame, chunk) && ok;
      }
      done += chunk;
    }
    return ok;
  }

  unmap(dev: number, gpa: number, len: number): number {
    // Every leaf that starts inside the range, one io_unmap each, walking on from the last one.
    // Adjacent leaves of one size go in one walk where no interleaved op can look in between
    // (LeafRun): one run of io_unmap calls.
    const s2 = this.machine.device(dev).s2;
    const leaf = this.leafScratch;
    const run = this.leafRun.start(this.machine.recorder.batching);
    const end = gpa + len;
    let unmapped = 0;
    let at = gpa;
    while (at < end) {
      if (!s2.leafInto(at, leaf)) {
        at = s2.nextMapped(at, end);
        continue;
      }
      // Read before the unmap: an interleaved op may look leaves up during the call.
      const iova = leaf.iova;
      const size = leaf.size;
      at = iova + size;
      if (iova < gpa || run.extend(iova, size)) continue;
      unmapped += this.unmapLeaves(dev, run);
      if (run.begin(iova, size)) continue;
      this.env.charge();
      unmapped += this.machine.ioUnmap(dev, iova, size).unmapped;
    }
    return unmapped + this.unmapLeaves(dev, run);
  }

  /** The leaves unmap() gathered, unmapped (one run where the budget takes all of them at once). */
  private unmapLeaves(dev: number, run: LeafRun): number {
    const { iova, size, count } = run;
    run.count = 0;
    if (count === 0) return 0;
    if (count > 1 && this.env.chargeRun(count)) {
      this.machine.ioUnmapLeaves(dev, iova, size, count);
      return count * size;
    }
    let unmapped = 0;
    for (let i = 0; i < count; i++) {
      this.env.charge();
      unmapped += this.machine.ioUnmap(dev, iova + i * size, size).unmapped;
    }
    return unmapped;
  }

  private readonly leafRun = new LeafRun();

  /** The leaf a lookup reads (leafInto), so that a lookup allocates nothing. */
  private readonly leafScratch: Leaf = { iova: 0, pa: 0, size: 0 };
  /** Leaf runs (iova, pa, len triples) of a table walk. */
  private readonly runScratch: number[] = [];

  /** Makes `gpa` and `gpa + len` leaf boundaries, down the path to each (cut_mapping(): cut-path.ts). */
  cut(dev: number, gpa: number, len: number, size: number): void {
    const s2 = this.machine.device(dev).s2;
    // A closure per call, not a field: the host's state is graph-copied by the boot cache, which
    // copies no function.
    const split = (iova: number, leafSize: number): void => {
      this.env.charge();
      this.machine.ioSplit(dev, iova, leafSize);
    };
    cutDownPath(s2, gpa, size, split, true);
    cutDownPath(s2, gpa + len, size, split, true);
  }

  flush(dev: number, options: { ranges?: readonly GatheredRange[] } = {}): void {
    this.env.charge();
    this.machine.iommuFlush(dev, options.ranges);
  }

  pending(dev: number): readonly GatheredRange[] {
    return this.machine.ioGathered(dev);
  }

  invalidate(dev: number, iova: number, len: number): number {
    this.env.charge();
    return this.machine.iotlbInvalidate(dev, iova, len);
  }

  releasePins(dev: number): void {
    this.frames.releasePins(dev);
  }

  mirror(dev: number, options: { followRmp?: boolean } = {}): void {
    const device = this.machine.device(dev);
    // One unmap per run of adjacent leaves (the walk goes on until an empty slot): the leaf runs
    // of the whole table (adjacent and with contiguous output), joined where only the IOVAs meet.
    const count = device.s2.leafRuns(0, Number.MAX_SAFE_INTEGER, this.runScratch);
    const runs: { iova: number; size: number }[] = [];
    for (let r = 0; r < count; r++) {
      const iova = this.runScratch[3 * r]!;
      const size = this.runScratch[3 * r + 2]!;
      const last = runs[runs.length - 1];
      if (last !== undefined && last.iova + last.size === iova) last.size += size;
      else runs.push({ iova, size });
    }
    for (const run of runs) {
      this.env.charge();
      this.machine.ioUnmap(dev, run.iova, run.size);
    }
    if (runs.length > 0) this.flush(dev);
    const view = this.view(dev);
    for (const run of this.backing.runs(view)) {
      if (options.followRmp === true && view === 'private') this.mapFollowingRmp(dev, run.gpa, run.hpa, run.len);
      else this.map(dev, run.gpa, run.hpa, run.len);
    }
  }
}
