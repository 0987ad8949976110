// The ways a write can fail, each with its own name so the CLI and tests can tell them apart.

export type StoreErrorCode = 'invalid' | 'not-found' | 'exists' | 'in-use' | 'conflict';

export class StoreError extends Error {
  constructor(readonly code: StoreErrorCode, message: string) {
    super(message);
  }
}

export const invalid = (m: string) => new StoreError('invalid', m);
export const notFound = (m: string) => new StoreError('not-found', m);
export const exists = (m: string) => new StoreError('exists', m);
export const inUse = (m: string) => new StoreError('in-use', m);
