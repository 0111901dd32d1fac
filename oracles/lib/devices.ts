// The device with a given id, by a plain loop: `view.devices.find((d) => d.id === id)` allocates a
// closure on every call, and event-based oracles look a device up for every DMA.

import type { DeviceView, View } from 'cocofuzz/api';

export function deviceById(view: View, id: number): DeviceView | undefined {
  const devices = view.devices;
  for (let d = 0; d < devices.length; d++) if (devices[d]!.id === id) return devices[d];
  return undefined;
}
