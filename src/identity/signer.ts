// The instance-identity service of one deployment: signs GCE-style identity tokens and EC2
// identity documents with the configured keys, and publishes what verifiers need (JWKS, OpenID
// discovery document, certificate). It needs no store: with etcd away, VMs the registry knows
// keep getting signed documents.
import { createLocalJWKSet, jwtVerify, type JWTPayload } from 'jose';
import { KeySet, IdentityKeyError, readKeyFile, type SigningAlg, type SigningKey } from './keys.js';
import { readCertificate, selfSignedCertificate, type DeploymentCertificate } from './certificate.js';
import { identityClaims, signIdentityToken, TOKEN_LIFETIME_SEC, type TokenSubject } from './jwt.js';
import { pkcs7Signature, rsaSignature } from './cms.js';
import { TokenBuckets } from '../rate.js';

export interface IdentityConfig {
  /** PEM file of private keys, oldest first; none: the identity paths answer 404. */
  keyFile?: string;
  /** The certificate of the newest RSA key; none: a deterministic self-signed one. */
  certFile?: string;
  /** `iss` of every token and the base of the discovery document (an https URL in production). */
  issuer?: string;
  alg: SigningAlg;
  /** accountId of EC2 identity documents. */
  accountId: string;
}

export interface Ec2Signatures { signature: string; pkcs7: string }

/** Tokens are re-used for a while (as GCE does), so asking again costs no signature. */
const TOKEN_REUSE_SEC = 600;
const MAX_CACHED = 10_000;
/**
 * New signatures a VM may cause: a burst, then one a second. The audience is the guest's to
 * choose, so without this a guest asking for a new one each time costs a signature a request.
 */
export const SIGNING_BURST = 20;
export const SIGNING_PER_SEC = 1;
const MAX_BUDGETS = 100_000;

/** A VM has used up its signing budget; it may ask again in about a second. */
export class SigningRateLimited extends Error {
  constructor() { super('too many new identity tokens'); }
}

function bounded<V>(map: Map<string, V>, key: string, value: V): V {
  if (map.size >= MAX_CACHED) map.delete(map.keys().next().value as string);
  map.set(key, value);
  return value;
}

export class InstanceIdentity {
  private readonly tokens = new Map<string, { iat: number; token: Promise<string> }>();
  private readonly documents = new Map<string, Promise<Ec2Signatures>>();
  private readonly budget = new TokenBuckets({ burst: SIGNING_BURST, perSecond: SIGNING_PER_SEC, maxKeys: MAX_BUDGETS });

  private constructor(
    readonly keys: KeySet,
    readonly issuer: string,
    private readonly signer: SigningKey,
    private readonly rsa: SigningKey | undefined,
    readonly certificate: DeploymentCertificate | undefined,
    readonly accountId: string,
  ) {}

  /** undefined when no key file is configured; IdentityKeyError (one line) when it cannot be used. */
  static async load(cfg: IdentityConfig): Promise<InstanceIdentity | undefined> {
    if (!cfg.keyFile) return undefined;
    if (!cfg.issuer) throw new IdentityKeyError('identity.issuer is required with identity.keyFile (the URL verifiers know this deployment by)');
    const keys = new KeySet(await readKeyFile(cfg.keyFile));
    const signer = keys.newest(cfg.alg);
    if (!signer) throw new IdentityKeyError(`${cfg.keyFile}: no ${cfg.alg} key for identity.alg ${cfg.alg}`);
    const rsa = keys.newest('RS256');
    let certificate: DeploymentCertificate | undefined;
    if (cfg.certFile) {
      if (!rsa) throw new IdentityKeyError(`identity.certFile needs an RSA key in ${cfg.keyFile}`);
      certificate = readCertificate(cfg.certFile, rsa);
    } else if (rsa) {
      certificate = await selfSignedCertificate(rsa);
    }
    return new InstanceIdentity(keys, cfg.issuer.replace(/\/+$/, ''), signer, rsa, certificate, cfg.accountId);
  }

  get jwksUri(): string { return `${this.issuer}/.well-known/jwks.json`; }

  jwks(): { keys: object[] } { return this.keys.jwks(); }

  /** OpenID Connect discovery, the subset a token verifier reads. */
  openidConfiguration(): Record<string, unknown> {
    return {
      issuer: this.issuer,
      jwks_uri: this.jwksUri,
      id_token_signing_alg_values_supported: [...new Set(this.keys.keys.map((k) => k.alg))],
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      claims_supported: ['iss', 'aud', 'sub', 'azp', 'iat', 'exp', 'uncloud'],
    };
  }

  /**
   * A token for `vm` (re-used within TOKEN_REUSE_SEC for the same VM revision and request);
   * rejects with SigningRateLimited when it needs a new signature past the VM's budget.
   */
  token(vm: TokenSubject, revision: number, audience: string, full: boolean, now = Math.floor(Date.now() / 1000)): Promise<string> {
    const key = `${vm.id}\0${revision}\0${full ? 1 : 0}\0${audience}`;
    const hit = this.tokens.get(key);
    if (hit && now - hit.iat < TOKEN_REUSE_SEC) return hit.token;
    if (!this.budget.take(vm.id, now * 1000)) return Promise.reject(new SigningRateLimited());
    const token = signIdentityToken(this.signer, identityClaims(vm, { issuer: this.issuer, audience, full, now }));
    token.catch(() => this.tokens.delete(key));
    return bounded(this.tokens, key, { iat: now, token }).token;
  }

  /** Signatures over an EC2 identity document's exact bytes; undefined without an RSA key. */
  ec2(document: string): Promise<Ec2Signatures> | undefined {
    const { rsa, certificate } = this;
    if (!rsa || !certificate) return undefined;
    const hit = this.documents.get(document);
    if (hit) return hit;
    const bytes = Buffer.from(document, 'utf8');
    const signed = pkcs7Signature(rsa, certificate, bytes).then((pkcs7) => ({ signature: rsaSignature(rsa, bytes), pkcs7 }));
    signed.catch(() => this.documents.delete(document));
    return bounded(this.documents, document, signed);
  }

  /** Checks a token as a third party would: signature by a published key, issuer, audience, expiry. */
  async verify(token: string, audience: string): Promise<JWTPayload> {
    const { payload } = await jwtVerify(token, createLocalJWKSet(this.keys.jwks() as never), {
      issuer: this.issuer, audience, maxTokenAge: TOKEN_LIFETIME_SEC + 60,
    });
    return payload;
  }
}
