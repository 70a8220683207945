// torchvision's AdaptiveAvgPool2d as plain maths: the bins and the averaging matrix that both engines' graphs
// use (the TF.js op lives in @layertap/engines, the ONNX graph multiplies by the same matrix).

/** PyTorch's adaptive pooling bins: output i averages input [floor(i*in/out), ceil((i+1)*in/out)). */
export function adaptivePoolBins(inSize: number, outSize: number): [start: number, end: number][] {
  return Array.from({ length: outSize }, (_, i) => [
    Math.floor((i * inSize) / outSize),
    Math.ceil(((i + 1) * inSize) / outSize),
  ]);
}

/** The [out, in] row-major matrix that averages each bin: row i holds 1/len over bin i, zeros elsewhere. */
export function adaptivePoolMatrix(inSize: number, outSize: number): Float32Array {
  const matrix = new Float32Array(outSize * inSize);
  adaptivePoolBins(inSize, outSize).forEach(([start, end], i) => {
    for (let j = start; j < end; j++) matrix[i * inSize + j] = 1 / (end - start);
  });
  return matrix;
}
