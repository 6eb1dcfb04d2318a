#!/usr/bin/env node
// Converts the Kubernetes OpenAPI v2 document (api/openapi-spec/swagger.json of the
// k8s.io/kubernetes Go module) into the standalone JSON schemas kubeconform reads, laid out as
// kubeconform's default location expects: <out>/<version>-standalone[-strict]/<kind>-<group>-<version>.json
//
//   node openapi-to-jsonschema.mjs <swagger.json> <out dir> <kubernetes version, e.g. v1.37.2>
//
// It follows the conventions of the published kubernetes-json-schema sets: references inlined,
// int-or-string and Quantity accept numbers, optional fields accept null, and the strict set
// rejects any property the API does not define (what `kubeconform -strict` relies on).
import { mkdirSync, readFileSync, writeFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const [swaggerPath, outDir, k8sVersion] = process.argv.slice(2);
if (!swaggerPath || !outDir || !/^v\d+\.\d+\.\d+$/.test(k8sVersion ?? '')) {
  console.error('usage: openapi-to-jsonschema.mjs <swagger.json> <out dir> <vX.Y.Z>');
  process.exit(2);
}

const definitions = JSON.parse(readFileSync(swaggerPath, 'utf8')).definitions;
const REF_PREFIX = '#/definitions/';

// Types whose wire form is looser than the Go type the OpenAPI document describes.
const SPECIAL = {
  'io.k8s.apimachinery.pkg.util.intstr.IntOrString': { oneOf: [{ type: 'string' }, { type: 'integer' }] },
  'io.k8s.apimachinery.pkg.api.resource.Quantity': { oneOf: [{ type: 'string' }, { type: 'number' }] },
};

/** Returns a copy of a schema node with references inlined and vendor keys dropped. */
function expand(node, stack, strict) {
  if (Array.isArray(node)) return node.map((n) => expand(n, stack, strict));
  if (node === null || typeof node !== 'object') return node;
  if (typeof node.$ref === 'string') {
    const name = node.$ref.slice(REF_PREFIX.length);
    if (SPECIAL[name]) return structuredClone(SPECIAL[name]);
    // A recursive type (JSONSchemaProps) is left open below its first level.
    if (stack.includes(name)) return {};
    const target = definitions[name];
    if (!target) throw new Error(`unresolved reference ${node.$ref}`);
    return expand(target, [...stack, name], strict);
  }
  if (node.format === 'int-or-string') return structuredClone(SPECIAL['io.k8s.apimachinery.pkg.util.intstr.IntOrString']);
  const out = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'description' || key.startsWith('x-')) continue;
    if (key === 'properties') {
      out.properties = {};
      for (const [prop, schema] of Object.entries(value)) out.properties[prop] = expand(schema, stack, strict);
      continue;
    }
    out[key] = expand(value, stack, strict);
  }
  if (out.properties) {
    const required = new Set(out.required ?? []);
    for (const [prop, schema] of Object.entries(out.properties)) {
      if (!required.has(prop) && typeof schema.type === 'string') schema.type = [schema.type, 'null'];
    }
    if (strict && out.additionalProperties === undefined) out.additionalProperties = false;
  }
  return out;
}

function suffix(group, version) {
  // kubeconform names files by the first label of the group: networking.k8s.io/v1 -> -networking-v1.
  const first = group === '' ? '' : `-${group.split('.')[0].toLowerCase()}`;
  return `${first}-${version.toLowerCase()}`;
}

let written = 0;
for (const strict of [false, true]) {
  const final = join(outDir, `${k8sVersion}-standalone${strict ? '-strict' : ''}`);
  const tmp = `${final}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  for (const [name, def] of Object.entries(definitions)) {
    const gvks = def['x-kubernetes-group-version-kind'];
    if (!Array.isArray(gvks)) continue;
    const schema = expand(def, [name], strict);
    for (const { group, version, kind } of gvks) {
      const apiVersion = group === '' ? version : `${group}/${version}`;
      // apiVersion and kind are pinned so a manifest cannot pass against the wrong schema.
      const pinned = structuredClone(schema);
      if (pinned.properties?.apiVersion) pinned.properties.apiVersion = { type: 'string', enum: [apiVersion] };
      if (pinned.properties?.kind) pinned.properties.kind = { type: 'string', enum: [kind] };
      writeFileSync(join(tmp, `${kind.toLowerCase()}${suffix(group, version)}.json`), JSON.stringify(pinned));
      written++;
    }
  }
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
}
console.log(`wrote ${written} schemas for Kubernetes ${k8sVersion} under ${outDir}`);
