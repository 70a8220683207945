// torchvision's AdaptiveAvgPool2d for NHWC tensors, so the head works at image sizes other than 224.
import * as tf from '@tensorflow/tfjs-core';
import { adaptivePoolMatrix } from '@layertap/model';

/**
 * Adaptive average pooling of an NHWC batch to [N, size, size, C]. Pooling is separable, so it is two
 * matrix products (rows, then columns); at 224 the matrices are the identity and the result is exact.
 * Returns a new tensor owned by the caller; intermediates are freed.
 */
export function adaptiveAvgPool2d(x: tf.Tensor4D, size: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const rows = tf.tensor2d(adaptivePoolMatrix(h, size), [size, h]);
    const cols = tf.tensor2d(adaptivePoolMatrix(w, size), [size, w]);
    // [H, N*W*C] -> rows pooled -> [size(rows), N, W, C]
    const byRows = tf.matMul(rows, tf.reshape(tf.transpose(x, [1, 0, 2, 3]), [h, n * w * c]));
    // [W, N*size*C] -> columns pooled -> [size(cols), N, size(rows), C]
    const byCols = tf.reshape(tf.transpose(tf.reshape(byRows, [size, n, w, c]), [2, 1, 0, 3]), [w, n * size * c]);
    const pooled = tf.reshape<tf.Rank.R4>(tf.matMul(cols, byCols), [size, n, size, c]);
    return tf.transpose(pooled, [1, 2, 0, 3]);
  });
}
