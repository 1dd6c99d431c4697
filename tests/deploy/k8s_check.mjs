/* SPDX-License-Identifier: Apache-2.0 */
// tests/deploy/k8s_check.mjs RENDERED.yaml SHUTDOWN_TIMEOUT
//
// The offline check of deploy/k8s (run by tests/deploy/k8s-check.sh):
//  1. schema: every object is validated against the Kubernetes API's OpenAPI
//     schema for its apiVersion/kind with the npm package kubernetes-models
//     (its validate(): types, required fields, enums; it does not reject
//     unknown fields);
//  2. structure: what the issue asks of the manifests and what ties them
//     together - the namespace; every Deployment/Job's ConfigMaps and Secrets
//     exist (Secrets may be the external emailverify-db / emailverify-kafka
//     of secrets.example.yaml); resources on every container; non-root; the
//     coordinator's readiness on /readyz and liveness on /healthz; a worker
//     Deployment per region with hostNetwork and its pool; a
//     PodDisruptionBudget selecting each Deployment's pods;
//     terminationGracePeriodSeconds > the programs' --shutdown-timeout, which
//     the containers pass; a Service whose selector matches the coordinator.
import fs from "node:fs";
import YAML from "yaml";

const [file, shutdownArg] = process.argv.slice(2);
const shutdown = Number(shutdownArg || 20);
const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8")).map((d) => {
  if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
  return d.toJS();
}).filter(Boolean);

const errors = [];
const err = (obj, msg) => errors.push(`${obj.kind}/${obj.metadata?.name}: ${msg}`);
const EXTERNAL_SECRETS = new Set(["emailverify-db", "emailverify-kafka"]);

// 1. schema
for (const obj of docs) {
  const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : [null, obj.apiVersion];
  const path = `kubernetes-models/${group ? group + "/" : ""}${version}/${obj.kind}`;
  let Model;
  try {
    Model = (await import(path))[obj.kind];
  } catch (e) {
    err(obj, `no schema for ${obj.apiVersion} ${obj.kind} (${path})`);
    continue;
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    err(obj, `schema: ${e.message}`);
  }
}

// 2. structure
const byKind = (k) => docs.filter((o) => o.kind === k);
const names = (k) => new Set(byKind(k).map((o) => o.metadata.name));
const configMaps = names("ConfigMap"), secrets = names("Secret");
const ns = byKind("Namespace");
if (ns.length !== 1) errors.push(`expected one Namespace, found ${ns.length}`);
for (const o of docs) {
  if (o.kind !== "Namespace" && o.metadata.namespace !== ns[0]?.metadata.name)
    err(o, `not in namespace ${ns[0]?.metadata.name} (${o.metadata.namespace})`);
}
const matches = (sel, labels) => Object.entries(sel || {}).every(([k, v]) => labels?.[k] === v);
const workloads = [...byKind("Deployment"), ...byKind("Job")];
for (const w of workloads) {
  const pod = w.spec.template.spec;
  const labels = w.spec.template.metadata?.labels;
  if (w.kind === "Deployment" && !matches(w.spec.selector.matchLabels, labels)) err(w, "selector does not match the pod labels");
  if (!pod.securityContext?.runAsNonRoot) err(w, "pods not runAsNonRoot");
  for (const v of pod.volumes || []) {
    if (v.configMap && !configMaps.has(v.configMap.name)) err(w, `volume ${v.name}: no ConfigMap ${v.configMap.name}`);
    if (v.secret && !secrets.has(v.secret.secretName) && !EXTERNAL_SECRETS.has(v.secret.secretName))
      err(w, `volume ${v.name}: no Secret ${v.secret.secretName}`);
  }
  for (const c of pod.containers) {
    const r = c.resources || {};
    if (!r.requests?.cpu || !r.requests?.memory || !r.limits?.memory) err(w, `container ${c.name}: requests (cpu, memory) and a memory limit are required`);
    if (c.securityContext?.allowPrivilegeEscalation !== false) err(w, `container ${c.name}: allowPrivilegeEscalation is not false`);
    for (const e of c.envFrom || []) {
      if (e.configMapRef && !configMaps.has(e.configMapRef.name)) err(w, `envFrom: no ConfigMap ${e.configMapRef.name}`);
      if (e.secretRef && !secrets.has(e.secretRef.name) && !EXTERNAL_SECRETS.has(e.secretRef.name)) err(w, `envFrom: no Secret ${e.secretRef.name}`);
    }
    const mounts = new Set((pod.volumes || []).map((v) => v.name));
    for (const m of c.volumeMounts || []) if (!mounts.has(m.name)) err(w, `mount ${m.name}: no such volume`);
    const args = [...(c.command || []), ...(c.args || [])];
    const i = args.indexOf("--shutdown-timeout");
    if (w.kind === "Deployment") {
      if (i < 0) err(w, `container ${c.name}: no --shutdown-timeout`);
      else if (Number(args[i + 1]) !== shutdown) err(w, `--shutdown-timeout ${args[i + 1]}, expected ${shutdown}`);
      const grace = pod.terminationGracePeriodSeconds ?? 30;
      if (!(grace > Number(args[i + 1]))) err(w, `terminationGracePeriodSeconds ${grace} is not above --shutdown-timeout ${args[i + 1]}`);
      if (!byKind("PodDisruptionBudget").some((p) => matches(p.spec.selector.matchLabels, labels)))
        err(w, "no PodDisruptionBudget selects its pods");
    }
  }
}
const coord = byKind("Deployment").filter((d) => d.metadata.labels?.["app.kubernetes.io/component"] === "coordinator");
if (coord.length !== 1) errors.push(`expected one coordinator Deployment, found ${coord.length}`);
for (const d of coord) {
  const c = d.spec.template.spec.containers[0];
  if (c.readinessProbe?.httpGet?.path !== "/readyz") err(d, "readinessProbe is not GET /readyz");
  if (c.livenessProbe?.httpGet?.path !== "/healthz") err(d, "livenessProbe is not GET /healthz");
  if (![...(c.command || []), ...(c.args || [])].includes("serve")) err(d, "does not run `serve`");
  if (!byKind("Service").some((s) => matches(s.spec.selector, d.spec.template.metadata.labels))) err(d, "no Service selects it");
}
const workers = byKind("Deployment").filter((d) => d.metadata.labels?.["app.kubernetes.io/component"] === "worker");
const regions = new Set(workers.map((d) => d.metadata.labels["emailverify.io/region"]));
if (regions.size < 2 || regions.size !== workers.length) errors.push(`expected one worker Deployment per region (>= 2), found ${workers.length} for ${[...regions]}`);
for (const d of workers) {
  const pod = d.spec.template.spec;
  if (!pod.hostNetwork) err(d, "workers need hostNetwork (their pool's source addresses) - or document the egress gateway");
  if (pod.dnsPolicy !== "ClusterFirstWithHostNet") err(d, "hostNetwork pods need dnsPolicy ClusterFirstWithHostNet");
  const region = d.metadata.labels["emailverify.io/region"];
  const pool = (pod.volumes || []).find((v) => v.name === "pool");
  const cm = byKind("ConfigMap").find((m) => m.metadata.name === pool?.configMap?.name);
  const text = cm && Object.values(cm.data || {})[0];
  if (!text || !new RegExp(`^region\\s*=\\s*${region}\\s*$`, "m").test(text)) err(d, `its pool ConfigMap does not say region = ${region}`);
}
if (!byKind("Job").some((j) => (j.spec.template.spec.containers[0].command || []).includes("migrate"))) errors.push("no migration Job");

for (const e of errors) console.log("  " + e);
console.log(`k8s-check: ${docs.length} objects (${[...new Set(docs.map((o) => o.kind))].join(", ")}): ` +
  (errors.length ? `${errors.length} problem(s)` : "schema and structure ok"));
process.exit(errors.length ? 1 : 0);
