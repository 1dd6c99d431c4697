/* SPDX-License-Identifier: Apache-2.0 */
// tests/deploy/k8s_render.mjs DIR - a minimal `kustomize build` for
// deploy/k8s when no kustomize/kubectl is installed: the resources of
// DIR/kustomization.yaml in order, `namespace` set on each object, the
// configMapGenerator ConfigMaps (without kustomize's hash suffix) and the
// `images` renames.  Prints the objects as one YAML stream.  Only the
// fields deploy/k8s uses; anything else in kustomization.yaml is an error.
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";

const dir = process.argv[2];
const k = YAML.parse(fs.readFileSync(path.join(dir, "kustomization.yaml"), "utf8"));
const known = new Set(["apiVersion", "kind", "namespace", "labels", "resources", "configMapGenerator", "images"]);
for (const key of Object.keys(k)) if (!known.has(key)) throw new Error(`kustomization.yaml: ${key} is not supported here`);
const out = [];
for (const r of k.resources || [])
  for (const d of YAML.parseAllDocuments(fs.readFileSync(path.join(dir, r), "utf8"))) {
    if (d.errors.length) throw new Error(`${r}: ${d.errors[0].message}`);
    const o = d.toJS();
    if (o) out.push(o);
  }
for (const g of k.configMapGenerator || []) {
  const data = {};
  for (const f of g.files || []) {
    const [key, file] = f.includes("=") ? f.split("=") : [path.basename(f), f];
    data[key] = fs.readFileSync(path.join(dir, file), "utf8");
  }
  out.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: g.name }, data });
}
const images = new Map((k.images || []).map((i) => [i.name, `${i.newName || i.name}:${i.newTag || "latest"}`]));
for (const o of out) {
  if (k.namespace && o.kind !== "Namespace") o.metadata.namespace = k.namespace;
  for (const l of k.labels || []) o.metadata.labels = { ...(o.metadata.labels || {}), ...l.pairs };
  for (const c of o.spec?.template?.spec?.containers || []) if (images.has(c.image)) c.image = images.get(c.image);
}
process.stdout.write(out.map((o) => YAML.stringify(o)).join("---\n"));
