// uncloud-metadata identity jwks|cert|verify: what a third party needs to check a VM's identity,
// from the same key file the appliance signs with.
import { Command } from 'commander';
import { loadConfigOr } from '../../config/load.js';
import { CliError } from '../errors.js';
import { IdentityKeyError } from '../../identity/keys.js';
import { InstanceIdentity } from '../../identity/signer.js';

async function loadIdentity(o: { config?: string }): Promise<InstanceIdentity> {
  const cfg = loadConfigOr({ file: o.config }, (m) => new CliError(m));
  try {
    const id = await InstanceIdentity.load(cfg.identity);
    if (!id) throw new CliError('no identity.keyFile configured (config file or UNCLOUD_METADATA_IDENTITY_KEY_FILE)');
    return id;
  } catch (err) {
    if (err instanceof IdentityKeyError) throw new CliError(err.message);
    throw err;
  }
}

export function identityCommand(): Command {
  const cmd = new Command('identity').description('instance identity: keys and certificate for verifiers, and a token checker');
  cmd.command('jwks').description('print the JSON Web Key Set (every key in the key file)')
    .option('--config <file>', 'YAML config file (its identity section is used)')
    .action(async (o: { config?: string }) => {
      process.stdout.write(`${JSON.stringify((await loadIdentity(o)).jwks(), null, 2)}\n`);
    });
  cmd.command('cert').description('print the PEM certificate EC2 identity documents are signed under')
    .option('--config <file>', 'YAML config file (its identity section is used)')
    .action(async (o: { config?: string }) => {
      const id = await loadIdentity(o);
      if (!id.certificate) throw new CliError('the key file has no RSA key: EC2 identity documents are not signed');
      process.stdout.write(id.certificate.pem);
    });
  cmd.command('verify').argument('<token>').description('verify an identity token: exit 0 if valid, 1 with one line why not')
    .requiredOption('--audience <aud>', 'the audience the token must be for')
    .option('--config <file>', 'YAML config file (its identity section is used)')
    .action(async (token: string, o: { config?: string; audience: string }) => {
      const id = await loadIdentity(o);
      try {
        const p = await id.verify(token, o.audience);
        process.stdout.write(`valid: sub ${p.sub}, expires ${new Date(p.exp! * 1000).toISOString()}\n`);
      } catch (err) {
        throw new CliError(`invalid: ${(err as Error).message}`, 1);
      }
    });
  return cmd;
}
