import { resolve } from 'node:path';
import { Argument, Command, Option } from 'commander';
import { CERT_ROLES, createCa, DEFAULT_CA_DAYS, DEFAULT_LEAF_DAYS, issueCertificate, CaUnreadableError, PkiError, type CertRole } from '../../lib/pki';
import { CliError, EXIT } from '../cli-error';

/** Where `baton pki` keeps the CA and the certificates unless `--dir` says otherwise (relative to the working directory). */
export const DEFAULT_PKI_DIR = './baton-pki';

interface PkiOptions {
  dir: string;
  days?: number;
  san: string[];
}

/** A PkiError as a CliError: a usage error, or 1 when the CA on disk cannot be read. */
function asCliError(err: unknown): unknown {
  if (err instanceof CaUnreadableError) return new CliError(err.message, EXIT.FAILED);
  if (err instanceof PkiError) return new CliError(err.message, EXIT.USAGE);
  return err;
}

function daysOption(fallback: number): Option {
  return new Option('--days <N>', `validity in days (default ${fallback})`).argParser((v: string) => {
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 36500) throw new CliError(`--days expects a whole number of days from 1 to 36500, got '${v}'`);
    return Number(v);
  });
}

/** Commander's own errors (a bad role, a missing NAME) go to cli/main.ts as one usage line, as on every command. */
function quietSub(command: Command): Command {
  return command.exitOverride().configureOutput({ writeErr: () => undefined });
}

const dirOption = (): Option => new Option('--dir <DIR>', `directory of the CA and certificates (created 0700 if missing)`).default(DEFAULT_PKI_DIR);

/** Where each kind of certificate is configured, for the lines `issue` prints. */
function configLines(role: CertRole, name: string, files: { cert: string; key: string; ca: string }): string[] {
  const keys = [`  tls-cert: ${files.cert}`, `  tls-key: ${files.key}`, `  tls-ca: ${files.ca}`];
  switch (role) {
    case 'service':
      return [`In the configuration file of the ${name} service (or --tls-cert/--tls-key/--tls-ca, BATON_TLS_*):`, ...keys];
    case 'agent':
      return [`In the configuration file of the agent whose identity is ${name} (the identity must equal the certificate's name):`, ...keys];
    case 'operator':
      return [
        `For the baton CLI of operator ${name} (caller id cert=${name}): in ~/.config/baton/config.yaml`,
        ...keys,
        `or: export BATON_TLS_CA=${files.ca} BATON_TLS_CERT=${files.cert} BATON_TLS_KEY=${files.key}`,
        'or the flags --tls-ca, --tls-cert and --tls-key.',
      ];
  }
}

/**
 * `baton pki`: a small CA for Baton made with node:crypto (lib/pki.ts), no system binary needed:
 * `init` creates it, `issue` makes service, agent and operator certificates signed by it.
 */
export function pkiCommand(done: (code: number) => void): Command {
  const pki = new Command('pki').description(`create a CA and issue certificates for services, agents and operators (default directory ${DEFAULT_PKI_DIR})`);
  pki.addCommand(
    quietSub(new Command('init'))
      .description(`create a CA (ca.pem, and ca.key readable only by you) in --dir, default ${DEFAULT_PKI_DIR}; refuses to replace an existing one`)
      .addOption(dirOption())
      .addOption(daysOption(DEFAULT_CA_DAYS))
      .action((options: PkiOptions) => {
        const dir = resolve(options.dir);
        let files;
        try {
          files = createCa(dir, { days: options.days });
        } catch (err) {
          throw asCliError(err);
        }
        const out = [
          `Created a CA in ${dir}:`,
          `  ${files.cert}  the CA certificate: every service, agent and operator gets it as tls-ca`,
          `  ${files.key}  its private key (mode 0600): keep it here; only \`baton pki issue\` uses it`,
          'Next, issue a certificate for each service, agent and operator:',
          `  baton pki issue service scheduler --dir ${options.dir}   (and metadata, results; --san DNS:host for other names)`,
          `  baton pki issue agent <IDENTITY> --dir ${options.dir}`,
          `  baton pki issue operator <NAME> --dir ${options.dir}`,
        ];
        process.stdout.write(`${out.join('\n')}\n`);
        done(EXIT.OK);
      }),
  );
  pki.addCommand(
    quietSub(new Command('issue'))
      .description(`issue a certificate signed by the CA in --dir (default ${DEFAULT_PKI_DIR}): writes <dir>/<role>-<NAME>.pem and .key`)
      .addArgument(new Argument('<role>', 'what the certificate is for').choices(CERT_ROLES))
      .addArgument(new Argument('<NAME>', "the certificate's name: a service's name, an agent's identity, an operator's name (caller id cert=NAME)"))
      .addOption(dirOption())
      .addOption(daysOption(DEFAULT_LEAF_DAYS))
      .addOption(
        new Option('--san <DNS:x|IP:y>', 'another name of a service, repeatable (services always get DNS:NAME, DNS:localhost and IP:127.0.0.1)')
          .default([])
          .argParser((v: string, previous: string[]) => [...previous, v]),
      )
      .action((role: CertRole, name: string, options: PkiOptions) => {
        if (role !== 'service' && options.san.length > 0)
          throw new CliError(`--san is for service certificates; ${role} certificates are checked by name, not address`);
        let files;
        try {
          files = issueCertificate(resolve(options.dir), role, name, { sans: options.san, days: options.days });
        } catch (err) {
          throw asCliError(err);
        }
        const out = [
          `Issued the ${role} certificate ${name} (CN=${name}, OU=baton-${role}), valid ${options.days ?? DEFAULT_LEAF_DAYS} days:`,
          `  ${files.cert}`,
          `  ${files.key}  (mode 0600)`,
          ...configLines(role, name, files),
        ];
        process.stdout.write(`${out.join('\n')}\n`);
        done(EXIT.OK);
      }),
  );
  return pki;
}
