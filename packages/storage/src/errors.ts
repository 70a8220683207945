/** A buffer that is not a `.npy` file layertap can read (wrong magic, version, header or size). */
export class NpyFormatError extends Error {
  override name = 'NpyFormatError';
  readonly code = 'invalid_npy';
}

/** A buffer that is not a safetensors file layertap can read (bad header, offsets or size). */
export class SafetensorsFormatError extends Error {
  override name = 'SafetensorsFormatError';
  readonly code = 'invalid_safetensors';
}
