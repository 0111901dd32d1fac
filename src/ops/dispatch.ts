// Which actor runs which op (DESIGN.md, "Operations"). The actors are described here as plain
// interfaces so that ops/ depends on neither the guest nor the host implementation; the world
// (engine/world.ts) supplies them.

import type { AdversaryOp, DeviceOp, DmaDirection, Op } from './types.ts';
import type { PageSize } from '../model/size.ts';

/** An actor's answer: done (possibly with failures it recorded), or skipped with a reason. */
export interface Outcome {
  skipped?: string;
}

export interface GuestActor {
  accept(gpa: number, size: PageSize): Outcome;
  share(gpa: number, pages: number): Outcome;
  unshare(gpa: number, pages: number): Outcome;
  touch(gpa: number, write: boolean): Outcome;
  allocCoherent(dev: number, bytes: number, atomic: boolean): Outcome;
  freeCoherent(buf: number): Outcome;
  mapSingle(dev: number, bytes: number, align: number | undefined, dir: DmaDirection, overMax?: boolean): Outcome;
  unmapSingle(map: number): Outcome;
  sync(map: number): Outcome;
  tdiAccept(dev: number): Outcome;
  tdiUnlock(dev: number): Outcome;
}

export interface Actors {
  guest: GuestActor;
  device: { dma(op: DeviceOp): Outcome };
  host: { split(gpa: number): Outcome; sync(): Outcome };
  /** Raw hardware ops of a malicious host; only called when the config enables them. */
  adversary: { run(op: AdversaryOp): Outcome };
}

export function dispatch(op: Op, actors: Actors, options: { adversary: boolean }): Outcome {
  const { guest } = actors;
  switch (op.op) {
    case 'accept':
      return guest.accept(op.gpa, op.size);
    case 'share':
      return guest.share(op.gpa, op.pages);
    case 'unshare':
      return guest.unshare(op.gpa, op.pages);
    case 'touch':
      return guest.touch(op.gpa, op.write);
    case 'alloc_coherent':
      return guest.allocCoherent(op.dev, op.bytes, op.atomic === true);
    case 'free_coherent':
      return guest.freeCoherent(op.buf);
    case 'map_single':
      return guest.mapSingle(op.dev, op.bytes, op.align, op.dir, op.overMax === true);
    case 'unmap_single':
      return guest.unmapSingle(op.map);
    case 'sync':
      return guest.sync(op.map);
    case 'tdi_accept':
      return guest.tdiAccept(op.dev);
    case 'tdi_unlock':
      return guest.tdiUnlock(op.dev);
    case 'dma':
      return actors.device.dma(op);
    case 'host_split':
      return actors.host.split(op.gpa);
    case 'host_sync':
      return actors.host.sync();
    case 'hw_rmpupdate':
    case 'hw_psmash':
    case 'hw_map':
    case 'hw_unmap':
    case 'hw_host_write':
      if (!options.adversary) return { skipped: 'raw hardware ops need "adversary": "host" in the config' };
      return actors.adversary.run(op);
  }
}
