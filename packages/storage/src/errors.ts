/** A buffer that is not a `.npy` file layertap can read (wrong magic, version, header or size). */
export class NpyFormatError extends Error {
  override name = 'NpyFormatError';
  readonly code = 'invalid_npy';
}
