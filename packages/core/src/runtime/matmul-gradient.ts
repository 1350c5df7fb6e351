/**
 * The gradient of BatchMatMul with explicit transposes and plain matMuls only. tfjs's own gradient multiplies with
 * transpose flags, which wasm runs on its slow naive loop (a linear layer's backward pass ~9x slower, ENGINE.md).
 * This one also reduces over broadcast batch dimensions (tfjs's returns the broadcast shape and fails), so
 * [B, M, K] @ [K, N] and [1, M, K] @ [B, K, N] differentiate. It is correct on every backend.
 */
import * as tf from '@tensorflow/tfjs';

/** Swaps the last two axes with a transpose of rank <= 4 (wasm's transposes above rank 4 are slow). */
function swapLastTwo(x: tf.Tensor): tf.Tensor {
  const rank = x.rank;
  if (rank === 2) return tf.transpose(x);
  const rows = x.shape[rank - 2]!;
  const cols = x.shape[rank - 1]!;
  if (rank <= 4) return tf.transpose(x, [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2]);
  const outer = x.shape.slice(0, -2);
  const flat = tf.transpose(tf.reshape(x, [-1, rows, cols]), [0, 2, 1]);
  return tf.reshape(flat, [...outer, cols, rows]);
}

/** Sums a gradient computed at the broadcast shape back to the operand's shape. */
function reduceTo(grad: tf.Tensor, shape: number[]): tf.Tensor {
  if (grad.shape.length === shape.length && grad.shape.every((d, i) => d === shape[i])) return grad;
  const extra = grad.rank - shape.length;
  const axes: number[] = [];
  for (let axis = 0; axis < grad.rank - 2; axis++) {
    if (axis < extra || (shape[axis - extra] === 1 && grad.shape[axis] !== 1)) axes.push(axis);
  }
  return tf.reshape(axes.length > 0 ? tf.sum(grad, axes) : grad, shape);
}

const batchSize = (shape: number[]) => shape.slice(0, -2).reduce((a, b) => a * b, 1);

export const batchMatMulGradient: tf.GradConfig = {
  kernelName: 'BatchMatMul',
  inputsToSave: ['a', 'b'],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
    const grad = dy as tf.Tensor;
    const [a, b] = saved as [tf.Tensor, tf.Tensor];
    const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
    // The product is A @ B with A = op(a) [..., M, K] and B = op(b) [..., K, N]; dA = dy @ B^T, dB = A^T @ dy.
    return {
      a: () => {
        if (batchSize(a.shape) === 1 && batchSize(b.shape) > 1) return reduceTo(gradOfShared(grad, b, transposeB, transposeA, 'left'), a.shape);
        const g = transposeA
          ? tf.matMul(transposeB ? swapLastTwo(b) : b, swapLastTwo(grad)) // dA^T = B @ dy^T
          : tf.matMul(grad, transposeB ? b : swapLastTwo(b));
        return reduceTo(g, a.shape);
      },
      b: () => {
        if (batchSize(b.shape) === 1 && batchSize(a.shape) > 1) return reduceTo(gradOfShared(grad, a, transposeA, transposeB, 'right'), b.shape);
        const g = transposeB
          ? tf.matMul(swapLastTwo(grad), transposeA ? swapLastTwo(a) : a) // dB^T = dy^T @ A
          : tf.matMul(transposeA ? a : swapLastTwo(a), grad);
        return reduceTo(g, b.shape);
      },
    };
  },
};

/**
 * The gradient of an operand shared by every batch slice (batch size 1) as one 2-D product over the stacked
 * slices instead of a batched product and a sum: for the right operand dB = sum_i A_i^T dy_i = A2^T dy2 with
 * A2 = [batch * M, K] and dy2 = [batch * M, N]; for the left, dA = sum_i dy_i B_i^T = dyT2 @ B2 with the slices
 * laid side by side ([M, batch * N] @ [batch * N, K]).
 */
function gradOfShared(
  dy: tf.Tensor,
  other: tf.Tensor,
  otherTransposed: boolean,
  sharedTransposed: boolean,
  side: 'left' | 'right',
): tf.Tensor {
  if (side === 'right') {
    const rowsA = otherTransposed ? swapLastTwo(other) : other; // A [..., M, K]
    const k = rowsA.shape[rowsA.rank - 1]!;
    const n = dy.shape[dy.rank - 1]!;
    const a2 = tf.reshape(rowsA, [-1, k]);
    const dy2 = tf.reshape(dy, [-1, n]);
    return sharedTransposed ? tf.matMul(tf.transpose(dy2), a2) : tf.matMul(tf.transpose(a2), dy2); // [N, K] or [K, N]
  }
  const colsB = otherTransposed ? other : swapLastTwo(other); // B^T [..., N, K]
  const k = colsB.shape[colsB.rank - 1]!;
  const m = dy.shape[dy.rank - 2]!;
  const dyT = tf.reshape(swapLastTwo(dy), [-1, m]); // [batch * N, M]
  const b2 = tf.reshape(colsB, [-1, k]); // [batch * N, K]
  // dA [M, K] = dyT^T @ b2; dA^T [K, M] = b2^T @ dyT.
  return sharedTransposed ? tf.matMul(tf.transpose(b2), dyT) : tf.matMul(tf.transpose(dyT), b2);
}
