import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import Ajv from 'ajv';
import { Certificate, Issuer } from '@kubernetes-models/cert-manager/cert-manager.io/v1';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { AGENT_CONFIG_SCHEMA } from '../agent/agent-options';
import { SERVICE_NODE_OPTIONS } from '../cli/dev-stack';
import { startChild } from '../lib/child-process';
import { loadConfig } from '../lib/config';
import { LISTENING_LINE } from '../lib/main';
import { freePort } from '../lib/free-port';
import { packageRoot } from '../lib/package-root';
import { makeTestCertificates, type TestCertificates } from './helpers/certificates';
import { healthStatus } from './helpers/health';
import { useRedisServer } from './helpers/redis';

/**
 * No container engine runs here, so the deploy files are checked for what can
 * be checked. Every YAML file parses; every process the compose file and the Kubernetes manifests
 * run is started (services) or configured (agents) with exactly the configuration file and
 * BATON_* variables they give it, so an unknown key or a bad value fails here as it would there
 * (each variable is passed as its --<key> flag: a strict flag parser refuses unknown keys, where
 * an unknown variable would be silently ignored); every program they run exists in the build.
 */

const root = packageRoot();
const deployDir = join(root, 'deploy');

/** Where a deploy file's container sees the image's files (the Dockerfile's WORKDIR). */
const IMAGE_WORKDIR = '/app';
/** Where the systemd units expect Baton. */
const SYSTEMD_ROOT = '/opt/baton';

/** One Baton process as a deploy file runs it. */
interface ProcessUse {
  where: string;
  command: string[];
  /** The configuration file's content, when it comes from the deploy files. */
  config?: string;
  /** BATON_* variables with a literal value (BATON_CONFIG excluded). */
  env: Record<string, string>;
  /** NODE_OPTIONS, when set. */
  nodeOptions?: string;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) return yamlFiles(full);
    return /\.ya?ml$/.test(name) ? [full] : [];
  });
}

function documents(file: string): Array<Record<string, unknown>> {
  // merge: compose files share settings through YAML merge keys (<<: *anchor), as docker compose
  // reads them.
  return parseAllDocuments(readFileSync(file, 'utf8'), { merge: true }).map((d) => {
    assert.deepEqual(d.errors, [], `${relative(root, file)}: ${d.errors.map((e) => e.message).join('; ')}`);
    return d.toJS() as Record<string, unknown>;
  });
}

/** The variables of a compose `environment` map or a Kubernetes `env` list, with their literal values. */
function envEntries(env: unknown): Array<readonly [string, string | undefined]> {
  return Array.isArray(env)
    ? (env as Array<{ name: string; value?: string }>).map((e) => [e.name, e.value] as const)
    : Object.entries((env ?? {}) as Record<string, string>);
}

function batonEnv(env: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of envEntries(env)) if (name.startsWith('BATON_') && name !== 'BATON_CONFIG' && value !== undefined) out[name] = String(value);
  return out;
}

function nodeOptions(env: unknown): string | undefined {
  return envEntries(env).find(([name]) => name === 'NODE_OPTIONS')?.[1];
}

/** The Baton processes of deploy/compose.yaml; their config files are deploy/config, mounted at /etc/baton. */
function composeProcesses(): ProcessUse[] {
  const compose = documents(join(deployDir, 'compose.yaml'))[0] as {
    services: Record<string, { command?: string[]; entrypoint?: string[]; environment?: unknown; image?: string }>;
  };
  const uses: ProcessUse[] = [];
  for (const [name, s] of Object.entries(compose.services)) {
    if (s.image !== 'baton:latest') continue;
    const command = [...(s.entrypoint ?? []), ...(s.command ?? [])];
    const configAt = command.indexOf('--config');
    const config = configAt >= 0 ? readFileSync(join(deployDir, 'config', command[configAt + 1].replace('/etc/baton/', '')), 'utf8') : undefined;
    uses.push({ where: `compose ${name}`, command, config, env: batonEnv(s.environment), nodeOptions: nodeOptions(s.environment) });
  }
  return uses;
}

/** The Baton processes of deploy/kubernetes; their config files come from the ConfigMap. */
function kubernetesProcesses(): ProcessUse[] {
  const docs = yamlFiles(join(deployDir, 'kubernetes')).flatMap(documents);
  const configMap = docs.find((d) => d.kind === 'ConfigMap' && (d.metadata as { name: string }).name === 'baton-config') as { data: Record<string, string> };
  assert.ok(configMap, 'no baton-config ConfigMap');
  const uses: ProcessUse[] = [];
  for (const d of docs) {
    if (d.kind !== 'Deployment' && d.kind !== 'DaemonSet') continue;
    const spec = (d.spec as { template: { spec: { containers: Array<{ name: string; image: string; command: string[]; env?: unknown }> } } }).template.spec;
    for (const c of spec.containers) {
      if (c.image !== 'baton') continue;
      const configAt = c.command.indexOf('--config');
      const config = configMap.data[c.command[configAt + 1].replace('/etc/baton/', '')];
      assert.ok(config !== undefined, `${d.kind} ${c.name}: ${c.command[configAt + 1]} is not in the ConfigMap`);
      uses.push({ where: `kubernetes ${d.kind} ${c.name}`, command: c.command, config, env: batonEnv(c.env), nodeOptions: nodeOptions(c.env) });
    }
  }
  return uses;
}

/** The Baton processes of deploy/systemd (installed under SYSTEMD_ROOT). */
function systemdProcesses(): ProcessUse[] {
  return readdirSync(join(deployDir, 'systemd')).map((f) => {
    const unit = readFileSync(join(deployDir, 'systemd', f), 'utf8');
    const exec = /^ExecStart=(.*)$/m.exec(unit);
    assert.ok(exec, `${f} has no ExecStart`);
    const command = exec[1].split(/\s+/);
    return {
      where: `systemd ${f}`,
      command: command[0] === '/usr/bin/node' ? ['node', ...command.slice(1)] : command,
      env: {},
      nodeOptions: /^Environment=NODE_OPTIONS=(.*)$/m.exec(unit)?.[1],
    };
  });
}

/** The program a command runs, as a path in this tree, or undefined for a system command. */
function programPath(command: string[]): string | undefined {
  const program = command[0] === 'node' ? command[1] : command[0];
  if (program.startsWith(SYSTEMD_ROOT + '/')) return program.slice(SYSTEMD_ROOT.length + 1);
  if (program.startsWith(IMAGE_WORKDIR + '/')) return program.slice(IMAGE_WORKDIR.length + 1);
  return program.startsWith('/') ? undefined : program;
}

/** `--<key> value` for each BATON_<KEY> variable. */
function envFlags(env: Record<string, string>): string[] {
  // A boolean key (insecure) is a bare flag: `--insecure true` would be a stray argument.
  return Object.entries(env).flatMap(([name, value]) => {
    const flag = `--${name.slice('BATON_'.length).toLowerCase().replace(/_/g, '-')}`;
    return value === 'true' ? [flag] : [flag, value];
  });
}

/**
 * What the Dockerfile's runtime stage (node:20-bookworm-slim: Node and Debian's essential and
 * required packages, nothing installed on top) offers of the programs Baton's processes run.
 */
const RUNTIME_PROGRAMS = new Set(['/bin/sh', '/usr/bin/perl', 'id', 'getent', 'hostname']);

/** Programs that only development commands run (`baton dev`, the build), never a process of the image. */
const DEVELOPMENT_PROGRAMS = new Set(['redis-server']);

/** The programs a source file runs by name: string literals given to spawn/execFile and their Sync forms. */
function programsRunBy(source: string): string[] {
  return [...source.matchAll(/\b(?:spawn|spawnSync|execFile|execFileSync)\(\s*'([^']+)'/g)].map((m) => m[1]);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return name.endsWith('.ts') && !name.endsWith('.test.ts') ? [full] : [];
  });
}

/** Kubernetes API schemas of the kinds deploy/kubernetes uses (test/fixtures/kubernetes-schemas). */
interface KubernetesSchemas {
  kinds: Record<string, { apiVersion: string; schema: string }>;
}

/**
 * cert-manager's kinds, checked by the validators @kubernetes-models/cert-manager generates from
 * cert-manager's CRDs: types, enums and required fields. Unlike the Kubernetes schemas above they
 * let unknown fields through, as the CRDs do (the API server prunes them).
 */
const CERT_MANAGER_KINDS: Record<string, { apiVersion: string; validate: (o: unknown) => void }> = {
  Certificate: { apiVersion: Certificate.apiVersion, validate: (o) => new Certificate(o as ConstructorParameters<typeof Certificate>[0]).validate() },
  Issuer: { apiVersion: Issuer.apiVersion, validate: (o) => new Issuer(o as ConstructorParameters<typeof Issuer>[0]).validate() },
};

/** A validator of rendered objects by kind: the list of problems of one object, empty when it conforms. */
function kubernetesValidator(): { validate: (o: { apiVersion: string; kind: string }) => string[]; kinds: Set<string> } {
  const doc = JSON.parse(readFileSync(join(root, 'test', 'fixtures', 'kubernetes-schemas', 'kubernetes.json'), 'utf8')) as KubernetesSchemas &
    Record<string, unknown>;
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, formats: { 'date-time': true } });
  ajv.addKeyword('kinds');
  ajv.addSchema(doc, 'kubernetes');
  const validate = (o: { apiVersion: string; kind: string }): string[] => {
    const certManager = CERT_MANAGER_KINDS[o.kind];
    if (certManager) {
      if (o.apiVersion !== certManager.apiVersion) return [`apiVersion ${o.apiVersion}, expected ${certManager.apiVersion} for ${o.kind}`];
      try {
        certManager.validate(o);
        return [];
      } catch (err) {
        return [(err as Error).message];
      }
    }
    const kind = doc.kinds[o.kind];
    if (!kind) return [`no schema for kind ${o.kind}`];
    if (o.apiVersion !== kind.apiVersion) return [`apiVersion ${o.apiVersion}, expected ${kind.apiVersion} for ${o.kind}`];
    const check = ajv.getSchema(`kubernetes${kind.schema}`)!;
    if (check(o)) return [];
    return (check.errors ?? []).map(
      (e) =>
        `${e.instancePath || '/'} ${e.message ?? ''}${e.keyword === 'additionalProperties' ? `: ${String((e.params as { additionalProperty: string }).additionalProperty)}` : ''}`,
    );
  };
  return { validate, kinds: new Set([...Object.keys(doc.kinds), ...Object.keys(CERT_MANAGER_KINDS)]) };
}

describe('the image', () => {
  it('has every program a Baton process runs: none needs a binary the runtime stage lacks', async () => {
    const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
    const stages = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    assert.equal(stages.at(-1), 'node:20-bookworm-slim', 'RUNTIME_PROGRAMS describes this base image');
    assert.doesNotMatch(dockerfile.split(/^FROM /m).at(-1) ?? '', /apt-get install/, 'nothing is installed on top of the base');
    const needed = new Map<string, string>();
    for (const dir of ['lib', 'services', 'agent', 'cli']) {
      for (const file of sourceFiles(join(root, dir))) for (const p of programsRunBy(readFileSync(file, 'utf8'))) needed.set(p, relative(root, file));
    }
    // Programs named by constants rather than literals: the task wrapper's shell and the
    // supervisor's perl.
    const { WRAPPER_SHELL } = await import('../agent/task-wrapper');
    const { PERL_CANDIDATES } = await import('../agent/task-supervisor');
    needed.set(WRAPPER_SHELL, 'agent/task-wrapper.ts');
    needed.set(PERL_CANDIDATES[0], 'agent/task-supervisor.ts');
    const missing = [...needed].filter(([p]) => !RUNTIME_PROGRAMS.has(p) && !DEVELOPMENT_PROGRAMS.has(p));
    assert.deepEqual(missing, [], 'programs run by Baton that the runtime image lacks');
    assert.ok(needed.has('hostname') && needed.has('/bin/sh'), `the scan finds the programs it should: ${[...needed.keys()].join(', ')}`);
  });

  it('flags a program the runtime stage lacks (the check can fail)', () => {
    assert.deepEqual(programsRunBy("execFileSync('openssl', ['genpkey'])"), ['openssl']);
    assert.ok(!RUNTIME_PROGRAMS.has('openssl'));
  });
});

describe('deploy/', () => {
  const redis = useRedisServer();
  let certs: TestCertificates;
  let scratch: string;
  before(() => {
    certs = makeTestCertificates();
    scratch = mkdtempSync(join(tmpdir(), 'baton-deploy-'));
  });
  after(() => {
    rmSync(scratch, { recursive: true, force: true });
    rmSync(certs.dir, { recursive: true, force: true });
  });

  it('the Kubernetes kustomization renders, with pinned images, resources, metrics for every process, no Secret and Redis behind a password and a NetworkPolicy', () => {
    // What operators rely on; the schema of each object is checked in its own test below.
    const rendered = execFileSync('kubectl', ['kustomize', join(deployDir, 'kubernetes')], { encoding: 'utf8' });
    const objects = parseAllDocuments(rendered).map(
      (d) => d.toJS() as { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; spec?: Record<string, unknown> },
    );
    assert.ok(
      objects.every((o) => o.apiVersion && o.kind && o.metadata?.name),
      'every object has apiVersion, kind and a name',
    );
    assert.deepEqual(
      objects.filter((o) => o.kind === 'Secret').map((o) => o.metadata.name),
      [],
      're-applying never overwrites a Secret',
    );
    type Container = {
      name: string;
      image: string;
      env?: Array<{ name: string; value?: string }>;
      resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
      securityContext?: { runAsUser?: number };
    };
    type PodSpec = { containers: Container[]; securityContext?: { runAsUser?: number } };
    const workloads = objects.filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(o.kind)) as unknown as Array<{
      kind: string;
      metadata: { name: string };
      spec: { template: { metadata: { annotations?: Record<string, string> }; spec: PodSpec } };
    }>;
    assert.deepEqual(workloads.map((w) => w.metadata.name).sort(), ['agent', 'metadata', 'redis', 'results', 'scheduler']);
    for (const w of workloads) {
      for (const c of w.spec.template.spec.containers) {
        assert.match(c.image, /^[^:]+:(?!latest$)[\w.-]+$/, `${w.metadata.name}/${c.name}: image ${c.image} is pinned to a version`);
        assert.ok(
          c.resources?.requests?.cpu && c.resources.requests.memory && c.resources.limits?.memory,
          `${w.metadata.name}/${c.name} has requests and a memory limit`,
        );
      }
      if (w.metadata.name === 'redis') continue;
      const annotations = w.spec.template.metadata.annotations ?? {};
      assert.equal(annotations['prometheus.io/scrape'], 'true', `${w.metadata.name} is scraped`);
      assert.equal(annotations['prometheus.io/port'], '9464');
      const c = w.spec.template.spec.containers[0];
      const user = c.securityContext?.runAsUser ?? w.spec.template.spec.securityContext?.runAsUser;
      assert.equal(
        user,
        w.metadata.name === 'agent' ? 0 : 10001,
        `${w.metadata.name} runs as ${w.metadata.name === 'agent' ? 'root (tasks manage the node)' : "the image's baton user"}`,
      );
      assert.ok(
        c.env?.some((e) => e.name === 'OTEL_EXPORTER_OTLP_ENDPOINT'),
        `${w.metadata.name} exports traces`,
      );
    }
    const config = objects.find((o) => o.kind === 'ConfigMap') as unknown as { data: Record<string, string> };
    const agentEnv = workloads.find((w) => w.metadata.name === 'agent')!.spec.template.spec.containers[0].env ?? [];
    for (const piece of ['metadata', 'results', 'scheduler'])
      assert.match(config.data[`${piece}.yaml`], /^metrics-listen: 0\.0\.0\.0:9464$/m, `${piece} serves metrics`);
    assert.ok(
      agentEnv.some((e) => e.name === 'BATON_METRICS_LISTEN' && e.value === '0.0.0.0:9464'),
      'agents serve metrics',
    );
    const redisCommand = (workloads.find((w) => w.metadata.name === 'redis')!.spec.template.spec.containers[0] as Container & { command: string[] }).command;
    assert.ok(redisCommand.includes('--requirepass'), 'Redis asks for a password');
    const policy = objects.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'redis');
    assert.ok(policy, 'a NetworkPolicy guards Redis');
  });

  it("Kubernetes: each agent pod holds its own node's key only, made in the pod; each service its own, from cert-manager", () => {
    const rendered = execFileSync('kubectl', ['kustomize', join(deployDir, 'kubernetes')], { encoding: 'utf8' });
    type Mount = { name: string; mountPath: string };
    type Container = {
      name: string;
      command: string[];
      env?: Array<{ name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
      volumeMounts?: Mount[];
    };
    type Volume = { name: string; secret?: unknown; emptyDir?: { medium?: string }; projected?: { sources: Array<Record<string, unknown>> } };
    type Pod = {
      serviceAccountName?: string;
      automountServiceAccountToken?: boolean;
      initContainers?: Container[];
      containers: Container[];
      volumes: Volume[];
    };
    type K8sObject = { kind: string; metadata: { name: string }; spec: { template: { spec: Pod } } & Record<string, unknown> };
    const objects = parseAllDocuments(rendered).map((d) => d.toJS() as K8sObject);
    const agent = objects.find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'agent')!.spec.template.spec;
    // No Secret reaches an agent pod, directly or projected: no key is shared between nodes.
    for (const v of agent.volumes) {
      assert.equal(v.secret, undefined, `agent volume ${v.name} is a Secret`);
      assert.ok(!(v.projected?.sources ?? []).some((src) => 'secret' in src), `agent volume ${v.name} projects a Secret`);
    }
    const tlsMount = agent.containers[0].volumeMounts?.find((m) => m.mountPath === '/etc/baton/agent-tls');
    assert.ok(tlsMount, 'the agent mounts its certificate directory');
    assert.deepEqual(
      agent.volumes.find((v) => v.name === tlsMount.name)?.emptyDir,
      { medium: 'Memory', sizeLimit: '1Mi' },
      "the key lives in the pod's memory only",
    );
    // The init step makes it, for the node the pod runs on.
    const init = agent.initContainers?.find((c) => c.name === 'certificate');
    assert.ok(init, 'an init step issues the certificate');
    assert.deepEqual(init.command, ['node', 'dist/agent/request-certificate.js']);
    assert.ok(existsSync(join(root, init.command[1])), `${init.command[1]} is not in the build`);
    assert.equal(init.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
    assert.ok(init.volumeMounts?.some((m) => m.name === tlsMount.name));
    // The service account token that may request certificates reaches the init step only.
    assert.equal(agent.automountServiceAccountToken, false);
    const tokenVolumes = agent.volumes.filter((v) => (v.projected?.sources ?? []).some((src) => 'serviceAccountToken' in src)).map((v) => v.name);
    assert.equal(tokenVolumes.length, 1);
    assert.ok(!agent.containers.some((c) => c.volumeMounts?.some((m) => tokenVolumes.includes(m.name))), 'the agent container, where tasks run, has no token');
    // Services: one cert-manager Certificate each, CN = service, OU = baton-service, its own Secret.
    const issuer = objects.find((o) => o.kind === 'Issuer')!;
    assert.deepEqual(issuer.spec.ca, { secretName: 'baton-ca' });
    for (const piece of ['metadata', 'results', 'scheduler']) {
      const cert = objects.find((o) => o.kind === 'Certificate' && o.metadata.name === piece)?.spec as
        { secretName: string; commonName: string; subject: { organizationalUnits: string[] }; issuerRef: { name: string } } | undefined;
      assert.ok(cert, `no Certificate for ${piece}`);
      assert.deepEqual([cert.commonName, cert.subject.organizationalUnits, cert.issuerRef.name], [piece, ['baton-service'], issuer.metadata.name]);
      const pod = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === piece)!.spec.template.spec;
      const secrets = pod.volumes.filter((v) => v.secret).map((v) => (v.secret as { secretName: string }).secretName);
      assert.deepEqual(secrets, [cert.secretName], `${piece} mounts its own certificate only`);
    }
  });

  it('runs the scheduler as replicas: three in Kubernetes, spread over nodes, disrupted one at a time; two in the compose trial, both reached as `scheduler`', () => {
    const rendered = execFileSync('kubectl', ['kustomize', join(deployDir, 'kubernetes')], { encoding: 'utf8' });
    const objects = parseAllDocuments(rendered).map((d) => d.toJS() as { kind: string; metadata: { name: string }; spec: Record<string, unknown> });
    const scheduler = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'scheduler')!.spec as {
      replicas: number;
      selector: { matchLabels: Record<string, string> };
      template: { spec: { topologySpreadConstraints?: Array<{ topologyKey: string }> } };
    };
    assert.ok(scheduler.replicas >= 3, `the scheduler runs ${scheduler.replicas} replicas`);
    assert.deepEqual(
      scheduler.template.spec.topologySpreadConstraints?.map((c) => c.topologyKey),
      ['kubernetes.io/hostname'],
    );
    const budgets = objects.filter((o) => o.kind === 'PodDisruptionBudget') as unknown as Array<{
      spec: { maxUnavailable?: number; selector: { matchLabels: Record<string, string> } };
    }>;
    const budget = budgets.find((b) => JSON.stringify(b.spec.selector.matchLabels) === JSON.stringify(scheduler.selector.matchLabels));
    assert.equal(budget?.spec.maxUnavailable, 1, 'a PodDisruptionBudget lets one scheduler replica go at a time');
    const config = objects.find((o) => o.kind === 'ConfigMap') as unknown as { data: Record<string, string> };
    assert.match(config.data['scheduler.yaml'], /^replica-lease-s: 10$/m);

    const compose = documents(join(deployDir, 'compose.yaml'))[0] as {
      services: Record<string, { command?: string[]; networks?: { default?: { aliases?: string[] } } }>;
    };
    const replicas = Object.entries(compose.services).filter(([, s]) => s.command?.includes('dist/services/scheduler/main.js'));
    assert.deepEqual(replicas.map(([name]) => name).sort(), ['scheduler', 'scheduler-b']);
    assert.deepEqual(
      compose.services['scheduler-b'].networks?.default?.aliases,
      ['scheduler'],
      'agents reach both replicas under the name their certificate check expects',
    );
  });

  it('Kubernetes: every rendered object passes the schema of its kind (Kubernetes API kinds strictly, no unknown field; cert-manager kinds by its CRDs)', () => {
    const { validate, kinds } = kubernetesValidator();
    const rendered = execFileSync('kubectl', ['kustomize', join(deployDir, 'kubernetes')], { encoding: 'utf8' });
    const objects = parseAllDocuments(rendered).map((d) => d.toJS() as { apiVersion: string; kind: string; metadata: { name: string } });
    const unchecked: string[] = [];
    for (const o of objects) {
      if (!kinds.has(o.kind)) {
        unchecked.push(`${o.apiVersion} ${o.kind}`);
        continue;
      }
      assert.deepEqual(validate(o), [], `${o.kind} ${o.metadata.name}`);
    }
    assert.deepEqual([...new Set(unchecked)].sort(), [], 'every kind rendered has a schema');
    assert.ok(objects.some((o) => o.kind === 'Certificate') && objects.some((o) => o.kind === 'Issuer'), 'cert-manager objects are among those checked');
    assert.ok(objects.length >= 15, `${objects.length} objects validated`);
  });

  it('the schema check refuses a misspelt field, a wrong type and a wrong apiVersion, and a Certificate without its issuer (the check can fail)', () => {
    const { validate } = kubernetesValidator();
    const pod = { containers: [{ name: 'x', image: 'y', readinesProbe: { grpc: { port: 8081 } } }] };
    const deployment = (spec: unknown) => ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec });
    assert.match(validate(deployment({ selector: {}, template: { spec: pod } })).join(), /readinesProbe/);
    assert.match(validate(deployment({ selector: {}, replicas: 'two', template: { spec: { containers: [] } } })).join(), /replicas must be integer/);
    assert.match(validate({ ...deployment({ selector: {}, template: {} }), apiVersion: 'extensions/v1beta1' }).join(), /apiVersion/);
    assert.match(validate(deployment({ template: {} })).join(), /selector/, 'a required field is required');
    const certificate = (spec: unknown) => ({ apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: { name: 'c' }, spec });
    assert.deepEqual(validate(certificate({ secretName: 's', commonName: 'c', issuerRef: { name: 'ca' } })), []);
    assert.match(validate(certificate({ secretName: 's', commonName: 'c' })).join(), /issuerRef/, 'a Certificate needs its issuer');
    assert.match(validate(certificate({ secretName: 's', issuerRef: { name: 'ca' }, duration: 90 })).join(), /duration must be string/);
  });

  it('every YAML file parses', () => {
    const files = yamlFiles(deployDir);
    assert.ok(files.length >= 10, files.join(','));
    for (const f of files) documents(f);
  });

  it('every program the compose file, the manifests and the systemd units run exists in the build', () => {
    const uses = [...composeProcesses(), ...kubernetesProcesses(), ...systemdProcesses()];
    assert.ok(uses.length >= 12, `${uses.length} processes`);
    for (const use of uses) {
      const path = programPath(use.command);
      assert.ok(path, `${use.where}: ${use.command.join(' ')}`);
      assert.ok(existsSync(join(root, path)), `${use.where} runs ${path}, which the build does not have`);
    }
  });

  it('every deploy file runs each service with the node options `baton dev` gives it', () => {
    const uses = [...composeProcesses(), ...kubernetesProcesses(), ...systemdProcesses()];
    for (const service of ['metadata', 'results', 'scheduler'] as const) {
      const runs = uses.filter((u) => programPath(u.command) === join('dist', 'services', service, 'main.js'));
      assert.ok(runs.length >= 3, `${service}: run by ${runs.map((u) => u.where).join(', ')}`);
      for (const use of runs) assert.equal(use.nodeOptions, SERVICE_NODE_OPTIONS[service]?.join(' '), `${use.where}: NODE_OPTIONS`);
    }
  });

  it('the Dockerfile copies what exists and its entrypoints are in the build', () => {
    const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+)$/gm)) {
      const sources = m[1].trim().split(/\s+/).slice(0, -1);
      for (const s of sources) assert.ok(existsSync(join(root, s)), `Dockerfile copies ${s}, which does not exist`);
    }
    for (const m of dockerfile.matchAll(/node (\S+\.m?js)/g)) assert.ok(existsSync(join(root, m[1])), `Dockerfile names ${m[1]}, not in the build`);
    assert.ok(existsSync(join(root, 'bin', 'baton')));
    // Reflection in an image without buf reads the descriptor sets npm run build writes.
    for (const set of ['baton.binpb', 'health.binpb', 'reflection.binpb'])
      assert.ok(existsSync(join(root, 'dist', 'proto', set)), `npm run build wrote no dist/proto/${set}`);
  });

  /** Starts a service with a deploy file's configuration and variables, with only the host-specific values overridden. */
  async function startsWith(use: ProcessUse): Promise<void> {
    const path = programPath(use.command)!;
    const configFile = join(scratch, `${use.where.replace(/\W+/g, '-')}.yaml`);
    writeFileSync(configFile, use.config ?? '');
    const doc = (parseYaml(use.config ?? '') ?? {}) as Record<string, unknown>;
    const overrides = ['--listen', '127.0.0.1:0', '--log-level', 'silent'];
    if (path.includes('metadata')) overrides.push('--environmentpath', join(root, 'examples', 'modules'));
    if (!path.includes('metadata')) overrides.push('--redis-url', redis.url);
    if ('metrics-listen' in doc) overrides.push('--metrics-listen', '127.0.0.1:0');
    if ('tls-cert' in doc) overrides.push('--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-ca', certs.ca);
    let healthAddress: string | undefined;
    let child: Awaited<ReturnType<typeof startChild>>;
    for (let attempt = 1; ; attempt++) {
      healthAddress = 'health-listen' in doc ? `127.0.0.1:${await freePort()}` : undefined;
      const health = healthAddress ? ['--health-listen', healthAddress] : [];
      try {
        child = await startChild(process.execPath, [join(root, path), '--config', configFile, ...envFlags(use.env), ...overrides, ...health], {
          ready: LISTENING_LINE,
        });
        break;
      } catch (err) {
        // A port free when chosen may be taken by a test running beside this one before the service binds it: another port, up to three.
        if (!healthAddress || attempt === 3 || !String(err).includes('EADDRINUSE')) throw err;
      }
    }
    try {
      assert.match(child.readyLine, LISTENING_LINE);
      // The health-only port answers in plaintext, as the kubelet's grpc probe asks.
      if (healthAddress) assert.equal(await healthStatus(healthAddress, ''), 'SERVING', `${use.where}: health on ${healthAddress}`);
    } finally {
      await child.stop();
    }
    assert.equal(child.child.exitCode, 0, use.where);
  }

  /** Checks an agent's configuration with the agent's own schema, and that it has all three TLS files or insecure (else it would not start). */
  function agentAccepts(use: ProcessUse): void {
    const configFile = join(scratch, `${use.where.replace(/\W+/g, '-')}.yaml`);
    writeFileSync(configFile, use.config ?? '');
    const config = loadConfig(AGENT_CONFIG_SCHEMA, { argv: ['--config', configFile, ...envFlags(use.env)], env: {} });
    const tls = (['tls-cert', 'tls-key', 'tls-ca'] as const).filter((k) => config[k] !== undefined);
    assert.ok(
      config.insecure === true ? tls.length === 0 : tls.length === 3,
      `${use.where}: TLS keys ${tls.join(', ') || 'none'}, insecure ${String(config.insecure)}`,
    );
  }

  for (const [source, processes] of [
    ['compose file', composeProcesses],
    ['kubernetes manifests', kubernetesProcesses],
  ] as const) {
    it(`the ${source}: every service and agent gets a configuration it accepts`, async () => {
      const uses = processes().filter((u) => u.config !== undefined);
      assert.deepEqual([...new Set(uses.map((u) => programPath(u.command)))].sort(), [
        'dist/agent/main.js',
        'dist/services/metadata/main.js',
        'dist/services/results/main.js',
        'dist/services/scheduler/main.js',
      ]);
      for (const use of uses) {
        if (programPath(use.command) === 'dist/agent/main.js') agentAccepts(use);
        else await startsWith(use);
      }
    });
  }

  it('the compose pki service issues every certificate file the compose processes are configured with, once', () => {
    const dir = join(scratch, 'compose-pki');
    const run = () => execFileSync(process.execPath, [join(deployDir, 'compose-pki.mjs'), dir], { encoding: 'utf8' });
    assert.match(run(), /issued agent certificate agent1\n/);
    assert.equal(run(), '', 'a second run keeps the CA and certificates');
    const inDir = (path: string) => join(dir, path.replace(/^\/etc\/baton\/pki\//, ''));
    let checked = 0;
    for (const use of composeProcesses()) {
      const doc = {
        ...((parseYaml(use.config ?? '') ?? {}) as Record<string, string>),
        ...Object.fromEntries(Object.entries(use.env).map(([k, v]) => [k.slice('BATON_'.length).toLowerCase().replace(/_/g, '-'), v])),
      };
      for (const key of ['tls-cert', 'tls-key', 'tls-ca']) {
        if (doc[key] === undefined) continue;
        assert.match(doc[key], /^\/etc\/baton\/pki\//, `${use.where} ${key}`);
        assert.ok(existsSync(inDir(doc[key])), `${use.where}: ${key} ${doc[key]} is not issued by compose-pki.mjs`);
        checked++;
      }
      if (doc.identity)
        assert.match(
          new X509Certificate(readFileSync(inDir(doc['tls-cert']))).subject,
          new RegExp(`^CN=${doc.identity}$`, 'm'),
          `${use.where}: certificate name = identity`,
        );
    }
    assert.ok(checked >= 18, `${checked} TLS files checked`);
  });

  it('refuses an unknown key the same way (the check can fail)', async () => {
    await assert.rejects(
      startsWith({ where: 'bad', command: ['node', 'dist/services/results/main.js'], config: 'listen: 0.0.0.0:7412\nredis-uri: redis://x\n', env: {} }),
    );
    assert.throws(
      () => agentAccepts({ where: 'bad agent', command: ['node', 'dist/agent/main.js'], config: '', env: { BATON_SCHEDULER_ADRESS: 'x:1' } }),
      /scheduler-adress/,
    );
  });

  it('the services are probed by the kubelet over grpc on the health-only port their configuration opens; no probe starts a process', () => {
    const docs = yamlFiles(join(deployDir, 'kubernetes')).flatMap(documents);
    const configMap = docs.find((d) => d.kind === 'ConfigMap') as { data: Record<string, string> };
    type Probe = { exec?: unknown; grpc?: { port: number; service?: string } };
    type Container = {
      name: string;
      command?: string[];
      readinessProbe?: Probe;
      livenessProbe?: Probe;
      ports?: Array<{ name: string; containerPort: number }>;
    };
    const containers = docs
      .filter((d) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(d.kind as string))
      .flatMap((d) => (d.spec as { template: { spec: { containers: Container[] } } }).template.spec.containers);
    for (const c of containers)
      for (const probe of [c.readinessProbe, c.livenessProbe])
        if (c.command?.[0] === 'node') assert.equal(probe?.exec, undefined, `${c.name} has an exec probe starting Node`);
    const services = { metadata: 'baton.v1.MetadataService', results: 'baton.v1.ResultsService', scheduler: 'baton.v1.SchedulerService' };
    for (const [piece, service] of Object.entries(services)) {
      const c = containers.find((x) => x.name === piece)!;
      const healthListen = (parseYaml(configMap.data[`${piece}.yaml`]) as Record<string, string>)['health-listen'];
      assert.ok(healthListen, `${piece}.yaml opens a health port`);
      const port = Number(healthListen.split(':').at(-1));
      assert.deepEqual(c.readinessProbe?.grpc, { port, service }, `${piece} readiness: its own service on the health port`);
      assert.deepEqual(c.livenessProbe?.grpc, { port }, `${piece} liveness: the whole server on the health port`);
      assert.ok(
        c.ports?.some((p) => p.containerPort === port),
        `${piece} declares the health port`,
      );
    }
  });
});
