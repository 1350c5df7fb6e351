// The model both sides of crash-safety.test.ts build: two Linear layers (a few KB of weights).
import * as tf from '@tensorflow/tfjs';
import { Linear, Module } from '@chimera/core';

class CrashModel extends Module {
  constructor() {
    super();
    this.fc1 = this.addModule('fc1', new Linear(16, 32));
    this.fc2 = this.addModule('fc2', new Linear(32, 8));
  }
  forward(x) {
    return tf.tidy(() => this.fc2.forward(tf.relu(this.fc1.forward(x))));
  }
}

export function crashModel() {
  return new CrashModel();
}

/** Sets every parameter to `value`. */
export function setAll(model, value) {
  for (const [, v] of model.namedParameters()) tf.tidy(() => v.assign(tf.fill(v.shape, value)));
}
