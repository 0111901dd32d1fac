// The package root: what plugin authors, vitest users and scripts import from 'cocofuzz'.
// Oracles and policies need only the API types (also at 'cocofuzz/api'); the engine entry points
// let scripts run cases, campaigns and repro files without the CLI.

export * from './api.ts';
export { createPageTable } from './model/pagetable/index.ts';
export type { Leaf as PageTableLeaf, MapResult, PageTable, PageTableOptions, UnmapResult } from './model/pagetable/index.ts';
export { Machine, HardwareUsageError } from './model/machine.ts';
export * from './model/types.ts';

export { defineGuestPolicy, defineHostPolicy } from './policies/types.ts';
export type * from './policies/types.ts';
export { guestPolicies, hostPolicies } from './policies/index.ts';
export { builtinOracles } from '../oracles/index.ts';

export type { Case, Config, DeviceConfig, During, InnerOp, Op, OpName } from './ops/types.ts';
export { parseConfig, defaultConfig, encodeConfig } from './ops/config.ts';
export { parseOp, encodeOp, formatOp } from './ops/codec.ts';
export { DURING, OP_SPECS } from './ops/schema.ts';
export { generateCase, caseSeed, type GenerateOptions } from './ops/generate.ts';
export { anyOpArbitrary, caseArbitrary, opArbitrary } from './ops/arbitrary.ts';
export { FormatError } from './ops/errors.ts';

export { createWorld, PolicyError, type World } from './engine/world.ts';
export { runCase, signature, POLICY_ERROR, type RunOptions, type RunResult, type Policies } from './engine/run.ts';
export { minimizeCase } from './engine/minimize.ts';
export { runCampaign, type CampaignOptions, type CampaignStats, type Bucket } from './engine/campaign.ts';
export { replayRepro, checkExpectation } from './engine/replay.ts';
export { explainRepro } from './engine/explain.ts';
export { resolveOracles, resolvePolicies } from './engine/select.ts';
export { readRepro, writeRepro, parseRepro, encodeRepro, REPRO_FORMAT, type Repro, type Expectation } from './repro/format.ts';

export { fuzzProperty, FuzzPropertyError, type FuzzPropertyOptions, OracleFailedError } from './engine/property.ts';
