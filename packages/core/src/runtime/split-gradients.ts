/**
 * The gradients of SplitV (tf.split) and Unpack (tf.unstack) for any number of pieces. tfjs's own gradients
 * concatenate (stack) the pieces' gradients, but tfjs hands a gradient function a bare tensor instead of a list
 * when the op has one output, so a split into one piece fails ("Pass at least one tensor to concat"). That is the
 * case a batched encoder meets whenever a batch holds one item. These compute exactly what tfjs's do (the same
 * concat or stack of the same tensors; unused pieces arrive as zeros from the engine), for one piece too.
 */
import * as tf from '@tensorflow/tfjs';

const pieces = (dy: tf.Tensor | tf.Tensor[]): tf.Tensor[] => (Array.isArray(dy) ? dy : [dy]);

export const splitVGradient: tf.GradConfig = {
  kernelName: 'SplitV',
  gradFunc: (dy: tf.Tensor | tf.Tensor[], _saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
    const { axis } = attrs as unknown as { axis: number };
    return { x: () => tf.concat(pieces(dy), axis) };
  },
};

export const unpackGradient: tf.GradConfig = {
  kernelName: 'Unpack',
  gradFunc: (dy: tf.Tensor | tf.Tensor[], _saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
    const { axis } = attrs as unknown as { axis: number };
    return { value: () => tf.stack(pieces(dy), axis) };
  },
};
