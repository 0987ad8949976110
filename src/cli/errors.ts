// CLI failures: one line on stderr, a non-zero exit, nothing written.
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

export function fail(message: string): never {
  throw new CliError(message);
}
