// JSON Schema validators for the tests: SARIF 2.1.0 against the OASIS schema as Microsoft's
// @microsoft/jest-sarif ships it (lib/schemas/sarif-2.1.0-rtm.5.json, the final 2.1.0 schema,
// draft-04, validated with ajv-draft-04; its language-tag pattern is not valid as a unicode
// RegExp, hence unicodeRegExp: false), and repro files against schema/repro.schema.json.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import AjvDraft04Module from 'ajv-draft-04';

const require = createRequire(import.meta.url);
// ajv-draft-04 is CommonJS with only a default export: under NodeNext it arrives as the module.
const AjvDraft04 = (AjvDraft04Module as unknown as { default: typeof Ajv }).default;
const messages = (errors: ErrorObject[] | null | undefined): string[] => (errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`);

export const SARIF_SCHEMA_FILE = join(dirname(require.resolve('@microsoft/jest-sarif/package.json')), 'lib/schemas/sarif-2.1.0-rtm.5.json');

/** Errors of `document` against SARIF 2.1.0 (empty: valid). */
export function sarifErrors(document: unknown): string[] {
  const ajv = new AjvDraft04({ allErrors: true, strict: false, validateFormats: false, unicodeRegExp: false });
  const validate = ajv.compile(JSON.parse(readFileSync(SARIF_SCHEMA_FILE, 'utf8')) as object);
  return validate(document) ? [] : messages(validate.errors);
}

/** Errors of `document` against the repro schema the package ships (empty: valid). */
export function reproSchemaErrors(document: unknown): string[] {
  const schema = JSON.parse(readFileSync(new URL('../../schema/repro.schema.json', import.meta.url), 'utf8')) as object;
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(schema);
  return validate(document) ? [] : messages(validate.errors);
}
