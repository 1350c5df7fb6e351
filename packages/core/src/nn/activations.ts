/**
 * Activation functions, and a lookup by the names model configs use (`hidden_act`). GELU is Hendrycks &
 * Gimpel 2016 (exact erf form and its tanh approximation); SiLU/Swish is Elfwing et al. 2017 / Ramachandran
 * et al. 2017; quick_gelu is the sigmoid approximation x * sigmoid(1.702 x) that OpenAI's CLIP was trained with.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Activation names the layers accept (checkpoint aliases such as `swish` also resolve, see {@link ACTIVATION_NAMES}).
 */
export type ActivationName = 'gelu' | 'gelu_tanh' | 'silu' | 'relu' | 'quick_gelu';
/** An elementwise activation; returns a new tensor. */
export type ActivationFn = (x: tf.Tensor) => tf.Tensor;

const SQRT_HALF = Math.SQRT1_2;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** Exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, SQRT_HALF)))));
}

/** GELU's tanh approximation (GPT-2, Gemma): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), SQRT_2_OVER_PI);
    return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(inner)));
  });
}

/** SiLU / Swish: x * sigmoid(x). */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

/** CLIP's quick GELU: x * sigmoid(1.702 x). */
export function quickGelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702))));
}

/** max(x, 0). */
export function relu(x: tf.Tensor): tf.Tensor {
  return tf.relu(x);
}

const ACTIVATIONS: Record<ActivationName, ActivationFn> = {
  gelu,
  gelu_tanh: geluTanh,
  silu,
  relu,
  quick_gelu: quickGelu,
};

/** Aliases that checkpoints' configs use for the same functions. */
const ALIASES: Record<string, ActivationName> = {
  swish: 'silu',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_new: 'gelu_tanh',
};

/** The names `getActivation` accepts (aliases included). */
export const ACTIVATION_NAMES: readonly string[] = [...Object.keys(ACTIVATIONS), ...Object.keys(ALIASES)];

/** Resolves a config's activation name (or passes a function through). */
export function getActivation(activation: ActivationName | string | ActivationFn): ActivationFn {
  if (typeof activation === 'function') return activation;
  const name = Object.hasOwn(ALIASES, activation) ? ALIASES[activation]! : activation;
  const fn = Object.hasOwn(ACTIVATIONS, name) ? ACTIVATIONS[name as ActivationName] : undefined;
  if (!fn) {
    throw new Error(
      `unknown activation '${activation}'; expected one of ${ACTIVATION_NAMES.join(', ')}, or pass a function`,
    );
  }
  return fn;
}
