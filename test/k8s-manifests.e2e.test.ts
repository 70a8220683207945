/**
 * infra/k8s: every manifest validated offline against the Kubernetes and KEDA OpenAPI schemas published on
 * npm (kubernetes-models, @kubernetes-models/keda), the references between the objects checked, and the
 * BullMQ lists the KEDA triggers count checked against a real redis-server.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'bullmq';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { DatasetConfig, QueueName } from '@layertap/contracts';
import { RedisServer } from '@layertap/devservices';
import { CHUNK_JOB_OPTIONS, LayertapQueues, createRedis } from '@layertap/queue';

const REPO = path.resolve(__dirname, '..');
const K8S = path.join(REPO, 'infra', 'k8s');
const SECRET_TEMPLATE = 'secret.example.yaml';

// ---- the subset of the Kubernetes types these checks read ----

type Labels = Record<string, string>;
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Labels; annotations?: Labels };
  spec?: unknown;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}
interface KeyRef {
  name: string;
  key: string;
  optional?: boolean;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: KeyRef; configMapKeyRef?: KeyRef };
}
interface Probe {
  httpGet?: { path?: string; port: string | number };
  tcpSocket?: { port: string | number };
  exec?: { command: string[] };
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: EnvVar[];
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  containers: Container[];
  volumes?: { name: string; configMap?: { name: string; items?: { key: string; path: string }[] }; secret?: { secretName: string } }[];
  terminationGracePeriodSeconds?: number;
  serviceAccountName?: string;
  nodeSelector?: Labels;
  tolerations?: { key?: string; operator?: string; effect?: string }[];
  topologySpreadConstraints?: { topologyKey: string; whenUnsatisfiable: string; labelSelector?: { matchLabels?: Labels } }[];
}
interface Workload extends K8sObject {
  spec: {
    selector: { matchLabels: Labels };
    template: { metadata: { labels: Labels; annotations?: Labels }; spec: PodSpec };
    serviceName?: string;
    volumeClaimTemplates?: { metadata: { name: string } }[];
  };
}
interface ServicePort {
  name?: string;
  port: number;
  targetPort?: string | number;
}
interface Service extends K8sObject {
  spec: { selector: Labels; ports: ServicePort[]; clusterIP?: string };
}
interface RedisTrigger {
  type: string;
  name?: string;
  metadata: Record<string, string>;
  authenticationRef?: { name: string };
}
interface ScaledObject extends K8sObject {
  spec: {
    scaleTargetRef: { name: string; kind?: string };
    minReplicaCount?: number;
    maxReplicaCount?: number;
    cooldownPeriod?: number;
    triggers: RedisTrigger[];
  };
}
interface TriggerAuthentication extends K8sObject {
  spec: { secretTargetRef?: { parameter: string; name: string; key: string }[] };
}
interface ServiceMonitor extends K8sObject {
  spec: { selector: { matchLabels: Labels }; endpoints: { port?: string; path?: string; interval?: string }[] };
}
interface Ingress extends K8sObject {
  spec: { rules?: { http?: { paths: { backend: { service?: { name: string; port: { name?: string; number?: number } } } }[] } }[] };
}
interface NetworkPolicy extends K8sObject {
  spec: { podSelector: { matchLabels?: Labels } };
}
interface Kustomization {
  namespace?: string;
  resources?: string[];
  images?: { name: string; newName?: string; newTag?: string }[];
}

/** One YAML document and the file it came from. */
interface Manifest {
  file: string;
  object: K8sObject;
}

// ---- reading the folder ----

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => path.relative(K8S, path.join(e.parentPath, e.name)))
    .sort();
}

/** Every document of a file; YAML errors and warnings (duplicate keys, ...) fail the read. */
function readDocuments(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(path.join(K8S, file), 'utf8'), { prettyErrors: true, uniqueKeys: true });
  if (!Array.isArray(docs)) return [];
  return docs.flatMap((doc) => {
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length) throw new Error(`${file}: ${problems.map((p) => p.message).join('; ')}`);
    return doc.contents === null ? [] : [doc.toJS() as unknown];
  });
}

function loadAll(): { kustomization: Kustomization; manifests: Manifest[]; secretTemplate: K8sObject } {
  const manifests: Manifest[] = [];
  let kustomization: Kustomization | undefined;
  let secretTemplate: K8sObject | undefined;
  for (const file of yamlFiles(K8S)) {
    for (const object of readDocuments(file)) {
      if (file === 'kustomization.yaml') kustomization = object as Kustomization;
      else if (file === SECRET_TEMPLATE) secretTemplate = object as K8sObject;
      else manifests.push({ file, object: object as K8sObject });
    }
  }
  if (!kustomization || !secretTemplate) throw new Error(`infra/k8s needs kustomization.yaml and ${SECRET_TEMPLATE}`);
  return { kustomization, manifests, secretTemplate };
}

// ---- schema validation ----

/** apiVersion/kind -> the model module whose `.validate()` checks it against the published OpenAPI schema. */
const SCHEMA_MODULES: Record<string, string> = {
  'v1/Namespace': 'kubernetes-models/v1/Namespace',
  'v1/ConfigMap': 'kubernetes-models/v1/ConfigMap',
  'v1/Secret': 'kubernetes-models/v1/Secret',
  'v1/Service': 'kubernetes-models/v1/Service',
  'v1/ServiceAccount': 'kubernetes-models/v1/ServiceAccount',
  'apps/v1/Deployment': 'kubernetes-models/apps/v1/Deployment',
  'apps/v1/StatefulSet': 'kubernetes-models/apps/v1/StatefulSet',
  'networking.k8s.io/v1/Ingress': 'kubernetes-models/networking.k8s.io/v1/Ingress',
  'networking.k8s.io/v1/NetworkPolicy': 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy',
  'keda.sh/v1alpha1/ScaledObject': '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject',
  'keda.sh/v1alpha1/TriggerAuthentication': '@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication',
};

/**
 * Kinds with no schema package installed here, checked by hand for the fields that matter (the Prometheus
 * Operator's ServiceMonitor, only in optional/).
 */
const HAND_CHECKED: Record<string, (object: K8sObject) => string[]> = {
  'monitoring.coreos.com/v1/ServiceMonitor': (object) => {
    const spec = (object as ServiceMonitor).spec as Partial<ServiceMonitor['spec']> | undefined;
    const problems: string[] = [];
    if (!spec?.selector || typeof spec.selector !== 'object') problems.push('spec.selector is required');
    if (!Array.isArray(spec?.endpoints) || spec.endpoints.length === 0) problems.push('spec.endpoints must list at least one endpoint');
    for (const [i, e] of (spec?.endpoints ?? []).entries()) {
      if (typeof e.port !== 'string') problems.push(`spec.endpoints[${i}].port must name a Service port`);
      if (e.path !== undefined && !e.path.startsWith('/')) problems.push(`spec.endpoints[${i}].path must start with /`);
    }
    return problems;
  },
};

/**
 * kubernetes-models ships ES modules only, which Jest's CommonJS runtime cannot load: the models run in a
 * plain `node` (ESM) child, which reads `[{module, kind, object}]` on stdin and prints one error or null each.
 */
const VALIDATOR = `
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const results = [];
for (const { module, kind, object } of JSON.parse(Buffer.concat(chunks).toString('utf8'))) {
  const Model = (await import(module))[kind];
  try {
    new Model(object).validate();
    results.push(null);
  } catch (err) {
    results.push(err instanceof Error ? err.message : String(err));
  }
}
process.stdout.write(JSON.stringify(results));
`;

const typeKey = (o: K8sObject) => `${o.apiVersion}/${o.kind}`;
const where = (m: Manifest) => `${m.file}: ${m.object.kind ?? '?'} ${m.object.metadata?.name ?? '?'}`;

/** Problems found by the schemas; [] when every object is valid. Unknown kinds are problems. */
function schemaProblems(manifests: readonly Manifest[]): string[] {
  const problems: string[] = [];
  const batch: { manifest: Manifest; module: string }[] = [];
  for (const manifest of manifests) {
    const key = typeKey(manifest.object);
    const module = SCHEMA_MODULES[key];
    const byHand = HAND_CHECKED[key];
    if (module) batch.push({ manifest, module });
    else if (byHand) problems.push(...byHand(manifest.object).map((p) => `${where(manifest)}: ${p}`));
    else problems.push(`${where(manifest)}: unknown kind ${key} (no schema to validate it against)`);
  }
  const input = JSON.stringify(batch.map(({ manifest, module }) => ({ module, kind: manifest.object.kind, object: manifest.object })));
  // cwd: the test package, whose node_modules holds the models.
  const output = execFileSync(process.execPath, ['--input-type=module', '-e', VALIDATOR], { cwd: __dirname, input, encoding: 'utf8' });
  const results = JSON.parse(output) as (string | null)[];
  results.forEach((error, i) => {
    if (error !== null) problems.push(`${where(batch[i]!.manifest)}: ${error}`);
  });
  return problems;
}

/** The models' declaration files, parsed once for every call. */
const declarationCache = new Map<string, ts.SourceFile | undefined>();

/**
 * The OpenAPI schemas accept unknown fields: the API server rejects them only under strict field validation
 * and drops them otherwise, so a misspelt `livenessProbe` would silently vanish. TypeScript's excess-property
 * check against the same models' declarations catches them offline (one problem per object at most).
 */
function unknownFieldProblems(manifests: readonly Manifest[]): string[] {
  const checked = manifests.filter((m) => SCHEMA_MODULES[typeKey(m.object)]);
  const types = [...new Set(checked.map((m) => typeKey(m.object)))];
  const header = types.map((key, i) => `import type { I${key.split('/').pop()} as T${i} } from '${SCHEMA_MODULES[key]}';`);
  const body = checked.map((m, i) => `export const m${i}: T${types.indexOf(typeKey(m.object))} = ${JSON.stringify(m.object)};`);
  // In the test package, so that the models resolve from its node_modules; .mts for their ESM-only exports.
  const file = path.join(__dirname, '__k8s-manifest-fields__.mts');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
    lib: ['lib.es5.d.ts'],
  };
  const host = ts.createCompilerHost(options);
  const source = ts.createSourceFile(file, [...header, ...body].join('\n'), ts.ScriptTarget.ES2022);
  const { getSourceFile, fileExists } = host;
  host.getSourceFile = (name, ...rest) => {
    if (name === file) return source;
    if (!declarationCache.has(name)) declarationCache.set(name, getSourceFile.call(host, name, ...rest));
    return declarationCache.get(name);
  };
  host.fileExists = (name) => name === file || fileExists.call(host, name);
  const program = ts.createProgram([file], options, host);
  return program.getSemanticDiagnostics(program.getSourceFile(file)).map((d) => {
    const line = d.start === undefined ? -1 : source.getLineAndCharacterOfPosition(d.start).line - header.length;
    const manifest = checked[line];
    return `${manifest ? where(manifest) : file}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
}

// ---- cross-references ----

const isSubset = (small: Labels | undefined, big: Labels | undefined) =>
  !!small && Object.keys(small).length > 0 && Object.entries(small).every(([k, v]) => big?.[k] === v);

const WORKLOAD_KINDS = new Set(['Deployment', 'StatefulSet']);

function portExists(container: Container, port: string | number): boolean {
  return (container.ports ?? []).some((p) => (typeof port === 'number' ? p.containerPort === port : p.name === port));
}

/** Every reference between the objects (and to the Secret template) that does not resolve. */
function crossReferenceProblems(manifests: readonly Manifest[], secretTemplate: K8sObject, namespace: string): string[] {
  const problems: string[] = [];
  const objects = manifests.map((m) => m.object);
  const ofKind = <T extends K8sObject>(kind: string) => objects.filter((o) => o.kind === kind) as T[];
  const named = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);
  const workloads = objects.filter((o) => WORKLOAD_KINDS.has(o.kind)) as Workload[];
  const secretKeys = new Set(Object.keys({ ...secretTemplate.data, ...secretTemplate.stringData }));

  for (const m of manifests) {
    if (m.object.metadata.namespace !== undefined && m.object.metadata.namespace !== namespace) {
      problems.push(`${where(m)}: namespace ${m.object.metadata.namespace}, but kustomization.yaml deploys to ${namespace}`);
    }
  }

  const checkKeyRef = (owner: string, ref: KeyRef, kind: 'Secret' | 'ConfigMap') => {
    if (kind === 'Secret') {
      if (ref.name !== secretTemplate.metadata.name) problems.push(`${owner}: Secret ${ref.name} is not ${SECRET_TEMPLATE}'s ${secretTemplate.metadata.name}`);
      else if (!secretKeys.has(ref.key)) problems.push(`${owner}: Secret key ${ref.key} is not in ${SECRET_TEMPLATE}`);
      return;
    }
    const cm = named('ConfigMap', ref.name);
    if (!cm) problems.push(`${owner}: no ConfigMap ${ref.name}`);
    else if (!(ref.key in (cm.data ?? {}))) problems.push(`${owner}: ConfigMap ${ref.name} has no key ${ref.key}`);
  };

  for (const w of workloads) {
    const owner = `${w.kind} ${w.metadata.name}`;
    const pod = w.spec.template.spec;
    const podLabels = w.spec.template.metadata.labels;
    if (!isSubset(w.spec.selector.matchLabels, podLabels)) problems.push(`${owner}: selector does not match its pod labels`);
    if (pod.serviceAccountName && !named('ServiceAccount', pod.serviceAccountName)) problems.push(`${owner}: no ServiceAccount ${pod.serviceAccountName}`);
    for (const t of pod.topologySpreadConstraints ?? []) {
      if (!isSubset(t.labelSelector?.matchLabels, podLabels)) problems.push(`${owner}: topology spread on ${t.topologyKey} does not select its own pods`);
    }
    if (w.kind === 'StatefulSet') {
      const governing = named('Service', w.spec.serviceName ?? '') as Service | undefined;
      if (!governing || governing.spec.clusterIP !== 'None') problems.push(`${owner}: serviceName ${w.spec.serviceName} is not a headless Service`);
    }
    const volumeNames = new Set([...(pod.volumes ?? []).map((v) => v.name), ...(w.spec.volumeClaimTemplates ?? []).map((v) => v.metadata.name)]);
    for (const v of pod.volumes ?? []) {
      if (v.configMap) {
        const cm = named('ConfigMap', v.configMap.name);
        if (!cm) problems.push(`${owner}: volume ${v.name}: no ConfigMap ${v.configMap.name}`);
        for (const item of v.configMap.items ?? []) {
          if (cm && !(item.key in (cm.data ?? {}))) problems.push(`${owner}: volume ${v.name}: ConfigMap ${v.configMap.name} has no key ${item.key}`);
        }
      }
      if (v.secret) problems.push(`${owner}: volume ${v.name} mounts Secret ${v.secret.secretName}: not expected`);
    }
    const promPort = w.spec.template.metadata.annotations?.['prometheus.io/port'];
    for (const c of pod.containers) {
      const cowner = `${owner} container ${c.name}`;
      for (const e of c.env ?? []) {
        if (e.valueFrom?.secretKeyRef) checkKeyRef(`${cowner} env ${e.name}`, e.valueFrom.secretKeyRef, 'Secret');
        if (e.valueFrom?.configMapKeyRef) checkKeyRef(`${cowner} env ${e.name}`, e.valueFrom.configMapKeyRef, 'ConfigMap');
      }
      for (const mount of c.volumeMounts ?? []) {
        if (!volumeNames.has(mount.name)) problems.push(`${cowner}: mounts unknown volume ${mount.name}`);
      }
      for (const [probeName, probe] of [['startupProbe', c.startupProbe], ['readinessProbe', c.readinessProbe], ['livenessProbe', c.livenessProbe]] as const) {
        const port = probe?.httpGet?.port ?? probe?.tcpSocket?.port;
        if (port !== undefined && !portExists(c, port)) problems.push(`${cowner}: ${probeName} uses port ${port}, which the container does not expose`);
      }
    }
    if (promPort !== undefined && !pod.containers.some((c) => portExists(c, Number(promPort)))) {
      problems.push(`${owner}: prometheus.io/port ${promPort} is not a container port`);
    }
  }

  const selectedWorkloads = (selector: Labels | undefined) => workloads.filter((w) => isSubset(selector, w.spec.template.metadata.labels));
  for (const svc of ofKind<Service>('Service')) {
    const owner = `Service ${svc.metadata.name}`;
    const targets = selectedWorkloads(svc.spec.selector);
    if (targets.length !== 1) {
      problems.push(`${owner}: selector matches ${targets.length} workloads' pods (expected exactly 1)`);
      continue;
    }
    for (const p of svc.spec.ports) {
      const target = p.targetPort ?? p.port;
      if (!targets[0]!.spec.template.spec.containers.some((c) => portExists(c, target))) problems.push(`${owner}: targetPort ${target} is not a container port of ${targets[0]!.metadata.name}`);
    }
  }

  for (const np of ofKind<NetworkPolicy>('NetworkPolicy')) {
    if (selectedWorkloads(np.spec.podSelector.matchLabels).length === 0) problems.push(`NetworkPolicy ${np.metadata.name}: podSelector selects no workload`);
  }

  for (const sm of ofKind<ServiceMonitor>('ServiceMonitor')) {
    const owner = `ServiceMonitor ${sm.metadata.name}`;
    const services = ofKind<Service>('Service').filter((s) => isSubset(sm.spec.selector.matchLabels, s.metadata.labels));
    if (services.length !== 1) problems.push(`${owner}: selects ${services.length} Services (expected exactly 1)`);
    for (const e of sm.spec.endpoints) {
      if (services[0] && !services[0].spec.ports.some((p) => p.name === e.port)) problems.push(`${owner}: Service ${services[0].metadata.name} has no port ${e.port}`);
    }
  }

  for (const ing of ofKind<Ingress>('Ingress')) {
    for (const rule of ing.spec.rules ?? []) {
      for (const p of rule.http?.paths ?? []) {
        const ref = p.backend.service;
        const svc = ref && (named('Service', ref.name) as Service | undefined);
        if (!ref || !svc) problems.push(`Ingress ${ing.metadata.name}: no Service ${ref?.name}`);
        else if (!svc.spec.ports.some((sp) => (ref.port.name !== undefined ? sp.name === ref.port.name : sp.port === ref.port.number))) {
          problems.push(`Ingress ${ing.metadata.name}: Service ${ref.name} has no port ${ref.port.name ?? ref.port.number}`);
        }
      }
    }
  }

  for (const ta of ofKind<TriggerAuthentication>('TriggerAuthentication')) {
    for (const ref of ta.spec.secretTargetRef ?? []) checkKeyRef(`TriggerAuthentication ${ta.metadata.name} ${ref.parameter}`, ref, 'Secret');
  }

  for (const so of ofKind<ScaledObject>('ScaledObject')) {
    const owner = `ScaledObject ${so.metadata.name}`;
    if (!named(so.spec.scaleTargetRef.kind ?? 'Deployment', so.spec.scaleTargetRef.name)) problems.push(`${owner}: no Deployment ${so.spec.scaleTargetRef.name} to scale`);
    for (const t of so.spec.triggers) {
      const towner = `${owner} trigger ${t.name ?? t.type}`;
      if (t.authenticationRef && !named('TriggerAuthentication', t.authenticationRef.name)) problems.push(`${towner}: no TriggerAuthentication ${t.authenticationRef.name}`);
      const m = /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)$/.exec(t.metadata.address ?? '');
      const svc = m && (named('Service', m[1]!) as Service | undefined);
      if (!m || !svc) problems.push(`${towner}: address ${t.metadata.address} is not <service>.<namespace>.svc.cluster.local:<port> of a Service here`);
      else if (m[2] !== namespace) problems.push(`${towner}: address names namespace ${m[2]}, but kustomization.yaml deploys to ${namespace}`);
      else if (!svc.spec.ports.some((p) => p.port === Number(m[3]))) problems.push(`${towner}: Service ${svc.metadata.name} has no port ${m[3]}`);
    }
  }
  return problems;
}

// ---- small helpers ----

function find<T extends K8sObject>(manifests: readonly Manifest[], kind: string, name: string): T {
  const found = manifests.find((m) => m.object.kind === kind && m.object.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in infra/k8s`);
  return found.object as T;
}

function envOf(container: Container): Map<string, EnvVar> {
  return new Map((container.env ?? []).map((e) => [e.name, e]));
}

/** Kubernetes memory quantities (Ki, Mi, Gi) and redis.conf sizes (kb, mb, gb: powers of 1024) in bytes. */
function bytes(quantity: string): number {
  const m = /^(\d+)\s*(Ki|Mi|Gi|Ti|kb|mb|gb)?$/i.exec(quantity.trim());
  if (!m) throw new Error(`not a size: ${quantity}`);
  const unit = (m[2] ?? '').toLowerCase().replace(/i$|b$/, '');
  return Number(m[1]) * 1024 ** ['', 'k', 'm', 'g', 't'].indexOf(unit);
}

const clone = <T>(value: T): T => structuredClone(value);

// ---- the tests ----

describe('infra/k8s manifests', () => {
  const { kustomization, manifests, secretTemplate } = loadAll();
  const namespace = kustomization.namespace ?? 'default';
  const config = find<K8sObject>(manifests, 'ConfigMap', 'layertap-config');
  const prefix = config.data?.LAYERTAP_QUEUE_PREFIX ?? '';
  const worker = find<Workload>(manifests, 'Deployment', 'layertap-worker');
  const workerContainer = worker.spec.template.spec.containers[0]!;
  const workerEnv = envOf(workerContainer);
  const scaledObject = find<ScaledObject>(manifests, 'ScaledObject', 'layertap-worker');

  it('kustomization.yaml applies every manifest at the top level, not the Secret template or optional/', () => {
    const topLevel = yamlFiles(K8S).filter((f) => !f.includes(path.sep) && f !== 'kustomization.yaml' && f !== SECRET_TEMPLATE);
    expect([...(kustomization.resources ?? [])].sort()).toEqual(topLevel);
    expect(kustomization.resources).not.toContain(SECRET_TEMPLATE);
    expect(namespace).toBe('layertap');
    const optional = manifests.filter((m) => m.file.startsWith(`optional${path.sep}`));
    expect(optional.map((m) => m.object.kind).sort()).toEqual(['Ingress', 'ServiceMonitor']);
    // Applied with `kubectl apply -f`, so they carry the namespace themselves.
    for (const m of optional) expect({ file: m.file, namespace: m.object.metadata.namespace }).toEqual({ file: m.file, namespace });
    expect(manifests.length).toBeGreaterThanOrEqual(14);
  });

  it('every object is valid against the Kubernetes and KEDA OpenAPI schemas', () => {
    expect(schemaProblems([...manifests, { file: SECRET_TEMPLATE, object: secretTemplate }])).toEqual([]);
  });

  it('no object has a field the Kubernetes or KEDA API does not know (a misspelt field would be dropped)', () => {
    expect(unknownFieldProblems([...manifests, { file: SECRET_TEMPLATE, object: secretTemplate }])).toEqual([]);
  });

  it('every reference resolves: Secret and ConfigMap keys, selectors, ports, probes, KEDA targets', () => {
    expect(crossReferenceProblems(manifests, secretTemplate, namespace)).toEqual([]);
  });

  it('broken manifests fail: schema errors, unknown kinds and dangling references are reported', () => {
    const brokenWorker = clone(worker);
    brokenWorker.spec.template.spec.containers[0]!.ports = [{ name: 'metrics', containerPort: '9464' as unknown as number }];
    const brokenScaler = clone(scaledObject) as Partial<ScaledObject> & K8sObject;
    delete (brokenScaler.spec as Partial<ScaledObject['spec']>).triggers;
    const unknownKind: K8sObject = { apiVersion: 'example.com/v1', kind: 'Gadget', metadata: { name: 'x' } };
    const problems = schemaProblems([
      { file: 'worker.yaml', object: brokenWorker },
      { file: 'worker-autoscaling.yaml', object: brokenScaler },
      { file: 'gadget.yaml', object: unknownKind },
    ]);
    expect(problems).toEqual([
      'gadget.yaml: Gadget x: unknown kind example.com/v1/Gadget (no schema to validate it against)',
      expect.stringMatching(/^worker\.yaml: Deployment layertap-worker: .*containers\/0\/ports\/0\/containerPort must be integer/),
      expect.stringMatching(/^worker-autoscaling\.yaml: ScaledObject layertap-worker: .*spec must have required property '?triggers'?/),
    ]);

    const misspelt = clone(worker) as Workload & { spec: { template: { spec: { containers: Record<string, unknown>[] } } } };
    const container = misspelt.spec.template.spec.containers[0]!;
    container.livenesProbe = container.livenessProbe;
    delete container.livenessProbe;
    expect(unknownFieldProblems([{ file: 'worker.yaml', object: misspelt }])).toEqual([
      `worker.yaml: Deployment layertap-worker: Object literal may only specify known properties, and '"livenesProbe"' does not exist in type 'IContainer'.`,
    ]);

    const swap = (object: K8sObject) => manifests.map((m) => (m.object.kind === object.kind && m.object.metadata.name === object.metadata.name ? { ...m, object } : m));
    const dashboardService = clone(find<Service>(manifests, 'Service', 'layertap-dashboard'));
    dashboardService.spec.selector['app.kubernetes.io/component'] = 'dashbaord';
    expect(crossReferenceProblems(swap(dashboardService), secretTemplate, namespace)).toEqual([
      "Service layertap-dashboard: selector matches 0 workloads' pods (expected exactly 1)",
    ]);

    const typoWorker = clone(worker);
    const c = typoWorker.spec.template.spec.containers[0]!;
    c.env!.find((e) => e.name === 'REDIS_URL')!.valueFrom!.secretKeyRef!.key = 'REDIS_ULR';
    c.livenessProbe!.httpGet!.port = 9465;
    expect(crossReferenceProblems(swap(typoWorker), secretTemplate, namespace)).toEqual([
      'Deployment layertap-worker container worker env REDIS_URL: Secret key REDIS_ULR is not in secret.example.yaml',
      'Deployment layertap-worker container worker: livenessProbe uses port 9465, which the container does not expose',
    ]);

    const movedScaler = clone(scaledObject);
    movedScaler.spec.triggers[0]!.metadata.address = 'layertap-redis.default.svc.cluster.local:6379';
    expect(crossReferenceProblems(swap(movedScaler), secretTemplate, namespace)).toEqual([
      'ScaledObject layertap-worker trigger chunks-waiting: address names namespace default, but kustomization.yaml deploys to layertap',
    ]);
  });

  it('the Secret template holds placeholders only, for every key the manifests read', () => {
    expect(secretTemplate.metadata).toMatchObject({ name: 'layertap', namespace });
    const values = Object.entries(secretTemplate.stringData ?? {});
    expect(secretTemplate.data).toBeUndefined();
    expect(values.map(([k]) => k).sort()).toEqual(
      ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'LAYERTAP_DASHBOARD_PASSWORD', 'LAYERTAP_DASHBOARD_USER', 'REDIS_PASSWORD', 'REDIS_URL'],
    );
    for (const [key, value] of values) expect({ key, placeholder: value.includes('CHANGE_ME') }).toEqual({ key, placeholder: true });
  });

  it('the worker: the worker-gpu image, one GPU on a GPU node, spread over nodes, a grace period longer than its shutdown timeout', () => {
    // The image built from the Dockerfile's worker-gpu target, renamed to a registry by kustomization.yaml.
    const dockerfile = readFileSync(path.join(REPO, 'infra', 'docker', 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM \S+ AS worker-gpu$/m);
    expect(dockerfile).toContain(`--target worker-gpu -t ${workerContainer.image} .`);
    expect(kustomization.images?.map((i) => i.name)).toEqual(expect.arrayContaining([workerContainer.image]));

    const { requests, limits } = workerContainer.resources ?? {};
    expect(limits?.['nvidia.com/gpu']).toBe(1);
    expect(requests?.['nvidia.com/gpu']).toBe(1);
    expect(bytes(String(requests?.memory))).toBeLessThanOrEqual(bytes(String(limits?.memory)));
    expect(Number(requests?.cpu)).toBeGreaterThanOrEqual(1);

    const pod = worker.spec.template.spec;
    expect(pod.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
    expect(pod.tolerations).toContainEqual({ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' });
    expect(pod.topologySpreadConstraints?.map((t) => [t.topologyKey, t.whenUnsatisfiable])).toEqual([
      ['kubernetes.io/hostname', 'ScheduleAnyway'],
      ['topology.kubernetes.io/zone', 'ScheduleAnyway'],
    ]);

    const value = (name: string) => workerEnv.get(name)?.value;
    expect(value('TF_FORCE_GPU_ALLOW_GROWTH')).toBe('true');
    expect(value('LAYERTAP_BACKEND')).toBe('tensorflow');
    const shutdownMs = Number(value('LAYERTAP_SHUTDOWN_TIMEOUT_MS'));
    expect(shutdownMs).toBeGreaterThanOrEqual(30_000);
    // Leave time after the timeout for releasing the chunk and closing connections before SIGKILL.
    expect((pod.terminationGracePeriodSeconds ?? 30) * 1000).toBeGreaterThanOrEqual(shutdownMs + 15_000);

    for (const name of ['REDIS_URL', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
      expect(workerEnv.get(name)?.valueFrom?.secretKeyRef?.name).toBe(secretTemplate.metadata.name);
    }
    // The dashboard's credentials stay out of the worker.
    expect(workerEnv.has('LAYERTAP_DASHBOARD_PASSWORD')).toBe(false);
  });

  it('the worker: /metrics on the LAYERTAP_METRICS_PORT port answers the probes and the scrapers', () => {
    const metricsPort = Number(workerEnv.get('LAYERTAP_METRICS_PORT')?.value);
    expect(metricsPort).toBe(9464);
    expect(workerContainer.ports).toEqual([{ name: 'metrics', containerPort: metricsPort }]);
    // The worker's default listen address is the loopback one: the pod must ask for every interface.
    expect(workerContainer.args).toEqual(['--metrics-host', '0.0.0.0']);
    for (const probe of [workerContainer.startupProbe, workerContainer.readinessProbe, workerContainer.livenessProbe]) {
      expect(probe?.httpGet).toEqual({ path: '/metrics', port: 'metrics' });
    }
    expect(worker.spec.template.metadata.annotations).toEqual({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(metricsPort), 'prometheus.io/path': '/metrics' });
    const metricsService = find<Service>(manifests, 'Service', 'layertap-worker-metrics');
    expect(metricsService.spec.ports).toEqual([{ name: 'metrics', port: metricsPort, targetPort: 'metrics' }]);
    const monitor = find<ServiceMonitor>(manifests, 'ServiceMonitor', 'layertap-worker');
    expect(monitor.spec.endpoints).toEqual([expect.objectContaining({ port: 'metrics', path: '/metrics' })]);
  });

  it('the dashboard: credentials from the Secret, read-only, listening on all interfaces, unauthenticated /healthz probes', () => {
    const dashboard = find<Workload>(manifests, 'Deployment', 'layertap-dashboard');
    const container = dashboard.spec.template.spec.containers[0]!;
    const env = envOf(container);
    expect(container.image).toBe('layertap');
    expect(container.command).toEqual(['layertap-dashboard']);
    for (const name of ['LAYERTAP_DASHBOARD_USER', 'LAYERTAP_DASHBOARD_PASSWORD', 'REDIS_URL']) {
      expect(env.get(name)?.valueFrom?.secretKeyRef).toEqual({ name: secretTemplate.metadata.name, key: name });
    }
    expect(env.get('LAYERTAP_DASHBOARD_READ_ONLY')?.value).toBe('true');
    expect(env.get('LAYERTAP_DASHBOARD_HOST')?.value).toBe('0.0.0.0');
    expect(container.ports).toEqual([{ name: 'http', containerPort: Number(env.get('PORT')?.value) }]);
    expect(container.readinessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(container.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(env.get('LAYERTAP_QUEUE_PREFIX')?.valueFrom?.configMapKeyRef).toEqual(workerEnv.get('LAYERTAP_QUEUE_PREFIX')?.valueFrom?.configMapKeyRef);
  });

  it('Redis: noeviction, AOF, a password from the Secret, maxmemory well under the memory limit', () => {
    const conf = find<K8sObject>(manifests, 'ConfigMap', 'layertap-redis-config').data?.['redis.conf'] ?? '';
    const directive = (name: string) => new RegExp(`^${name} (.+)$`, 'm').exec(conf)?.[1];
    expect(directive('maxmemory-policy')).toBe('noeviction');
    expect(directive('appendonly')).toBe('yes');
    expect(directive('dir')).toBe('/data');
    const redis = find<Workload>(manifests, 'StatefulSet', 'layertap-redis');
    const container = redis.spec.template.spec.containers[0]!;
    expect(container.volumeMounts).toContainEqual({ name: 'data', mountPath: directive('dir') });
    // The include written at start-up from REDIS_PASSWORD, into the in-memory volume.
    const include = directive('include') ?? '';
    expect(container.args?.join(' ')).toContain(`> ${include}`);
    expect(container.volumeMounts?.some((m) => include.startsWith(`${m.mountPath}/`))).toBe(true);
    expect(envOf(container).get('REDIS_PASSWORD')?.valueFrom?.secretKeyRef).toEqual({ name: 'layertap', key: 'REDIS_PASSWORD' });
    // An AOF rewrite forks: copy-on-write needs room above maxmemory.
    expect(bytes(directive('maxmemory') ?? '0') * 1.5).toBeLessThanOrEqual(bytes(String(container.resources?.limits?.memory)));
  });

  it('KEDA: scales the worker Deployment on the BullMQ lists under the configured prefix', () => {
    expect(prefix).toBe('layertap');
    expect(scaledObject.spec.scaleTargetRef).toEqual({ name: worker.metadata.name });
    expect(scaledObject.spec.minReplicaCount).toBe(0);
    expect(scaledObject.spec.maxReplicaCount).toBeGreaterThan(scaledObject.spec.minReplicaCount ?? 0);
    const byName = new Map(scaledObject.spec.triggers.map((t) => [t.name, t]));
    expect([...byName.keys()]).toEqual(['chunks-waiting', 'chunks-active', 'datasets-waiting']);
    for (const t of scaledObject.spec.triggers) expect(t.type).toBe('redis');
    expect(byName.get('chunks-waiting')?.metadata.listName).toBe(`${prefix}:${QueueName.Chunks}:wait`);
    expect(byName.get('chunks-active')?.metadata.listName).toBe(`${prefix}:${QueueName.Chunks}:active`);
    expect(byName.get('datasets-waiting')?.metadata.listName).toBe(`${prefix}:${QueueName.Datasets}:wait`);
    // One running chunk per worker: never scale below the number of chunks running.
    expect(byName.get('chunks-active')?.metadata.listLength).toBe(workerEnv.get('LAYERTAP_CONCURRENCY')?.value);
    // A chunk in retry backoff is in the `delayed` set, which no trigger counts: keep workers up longer.
    const backoff = CHUNK_JOB_OPTIONS.backoff as { type: string; delay: number };
    const attempts = CHUNK_JOB_OPTIONS.attempts ?? 1;
    const totalBackoffMs = Array.from({ length: attempts - 1 }, (_, i) => backoff.delay * 2 ** i).reduce((a, b) => a + b, 0);
    expect(totalBackoffMs).toBe(30_000);
    expect((scaledObject.spec.cooldownPeriod ?? 300) * 1000).toBeGreaterThan(totalBackoffMs);
    const auth = find<TriggerAuthentication>(manifests, 'TriggerAuthentication', 'layertap-redis');
    expect(auth.spec.secretTargetRef).toEqual([{ parameter: 'password', name: 'layertap', key: 'REDIS_PASSWORD' }]);
  });
});

// ---- the BullMQ key layout, on a real Redis ----

/** A small dataset's configuration (parsed, so fields with defaults get them). */
function datasetConfig(datasetId: string): DatasetConfig {
  return DatasetConfig.parse({
    datasetId,
    output: 's3://bucket/activations',
    layers: [{ spec: 'block5_pool', canonical: 'block5_pool', shape: [512, 7, 7] }],
    seed: 0,
    preprocess: 'torchvision',
    imageSize: 224,
    batchSize: 16,
    chunkSize: 2,
    dtype: 'float32',
    layout: 'chw',
    pool: 'none',
    totalSamples: 5,
    submittedAt: new Date().toISOString(),
    run: 0,
  });
}

const SAMPLES = Array.from({ length: 5 }, (_, i) => ({
  id: `n01440764__n01440764_1002${i}`,
  uri: `s3://bucket/imagenet/train/n01440764/n01440764_1002${i}.JPEG`,
}));

type Redis = ReturnType<typeof createRedis>;

/** TYPE and length of a key (LLEN for lists). */
async function describeKey(redis: Redis, key: string): Promise<{ type: string; length: number }> {
  const type = await redis.type(key);
  return { type, length: type === 'list' ? await redis.llen(key) : -1 };
}

describe('the BullMQ keys the KEDA triggers count (real redis-server)', () => {
  const server = new RedisServer();
  let redis: Redis;
  beforeAll(async () => {
    await server.start();
    redis = createRedis(server.url);
  }, 30_000);
  afterAll(async () => {
    redis?.disconnect();
    await server.close();
  });

  it('waiting chunks, running chunks and datasets ready to merge are LISTs named as the triggers say', async () => {
    const { manifests } = loadAll();
    const triggers = find<ScaledObject>(manifests, 'ScaledObject', 'layertap-worker').spec.triggers;
    const listName = (name: string) => triggers.find((t) => t.name === name)?.metadata.listName ?? '';
    const prefix = find<K8sObject>(manifests, 'ConfigMap', 'layertap-config').data?.LAYERTAP_QUEUE_PREFIX ?? '';

    const queues = new LayertapQueues({ connection: redis, prefix });
    const worker = new Worker(QueueName.Chunks, null, { connection: redis, prefix, autorun: false });
    try {
      const submitted = await queues.submit(datasetConfig('k8s-keys'), SAMPLES);
      expect(submitted.chunks).toBe(3);
      expect(await describeKey(redis, listName('chunks-waiting'))).toEqual({ type: 'list', length: 3 });

      const token = 'k8s-test';
      const running = await worker.getNextJob(token, { block: false });
      expect(running?.id).toBe('k8s-keys~r0~c0');
      expect(await describeKey(redis, listName('chunks-active'))).toEqual({ type: 'list', length: 1 });
      expect(await describeKey(redis, listName('chunks-waiting'))).toEqual({ type: 'list', length: 2 });

      // Once every chunk is done, the dataset's parent job waits in the datasets queue for its merge.
      expect(await redis.exists(listName('datasets-waiting'))).toBe(0);
      for (let job = running; job; job = await worker.getNextJob(token, { block: false })) {
        await job.moveToCompleted({ ok: job.data.samples.length }, token, false);
      }
      expect(await describeKey(redis, listName('chunks-active'))).toEqual({ type: 'none', length: -1 });
      expect(await describeKey(redis, listName('datasets-waiting'))).toEqual({ type: 'list', length: 1 });
    } finally {
      await worker.close();
      await queues.close();
    }
  });

  it('with the Redis Cluster hash-tag prefix the wait list is {layertap}:chunks:wait', async () => {
    const queues = new LayertapQueues({ connection: redis, prefix: '{layertap}' });
    try {
      await queues.submit(datasetConfig('k8s-cluster-keys'), SAMPLES);
      expect(await describeKey(redis, '{layertap}:chunks:wait')).toEqual({ type: 'list', length: 3 });
    } finally {
      await queues.close();
    }
  });
});
