// The file formats layertap reads and writes, without the writers' clients: `@layertap/storage/formats`, for
// packages that read arrays and weights (the model package) and must not load the AWS SDK.
export { bfloat16BitsToFloat32, float16BitsToFloat32, float16BitsToFloat32Bits, float32BitsToFloat16Bits, float32ToFloat16Bits } from './float16';
export { decodeNpy, encodeNpy, npyByteLength, npyHeader, npyParts, shapeSize, type NpyArray } from './npy';
export {
  decodeSafetensors,
  encodeSafetensors,
  looksLikeSafetensors,
  parseSafetensorsHeader,
  safetensorsByteLength,
  safetensorsHeader,
  writeTensorData,
  type DecodedSafetensors,
  type SafetensorsDtype,
  type SafetensorsEntry,
  type SafetensorsHeaderEntry,
  type SafetensorsTensor,
} from './safetensors';
export { NpyFormatError, SafetensorsFormatError } from './errors';
