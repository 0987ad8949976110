// A stored value's JSON, or undefined when it is not JSON: readers then judge it by its schema
// (and skip it) instead of throwing in the middle of a load or a transaction.
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
