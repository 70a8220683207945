// Helpers shared by this package's tests and @layertap/engines': reference maths, weight files, parity
// fixtures, an ONNX decoder. Not for production code.
export * from './reference';
export * from './helpers';
export * from './onnx-decode';
