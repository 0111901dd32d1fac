/**
 * Malformed input (a repro file's config or op, a plugin): carries the path of the offending field
 * (`ops[2].gpa`, `config.devices[0].iommu`) so the CLI can print one line naming it.
 */
export class FormatError extends Error {
  override name = 'FormatError';
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}
