/**
 * The registry of blocks inserted before or after decoder layers (Flamingo's gated cross-attention, ...): a
 * Module whose children are the blocks, named `{position}_{layer}` (or `{position}_{layer}_{name}`), so their
 * parameters read `model.inserted.after_3.*`. Blocks at the same slot run in insertion order.
 */
import { Module } from '@chimera/core';
import type { InsertedBlock, InsertedBlockInfo } from './extension-points';

export class InsertedBlocks extends Module {
  private readonly entries: InsertedBlockInfo[] = [];
  private readonly prefix: string;

  /** `prefix` is this container's path in the model (for InsertedBlockInfo.prefix). */
  constructor(prefix: string) {
    super();
    this.prefix = prefix;
  }

  add(block: InsertedBlock, layer: number, position: 'before' | 'after', name?: string): InsertedBlockInfo {
    if (name !== undefined && !/^[A-Za-z0-9_]+$/.test(name)) {
      throw new Error(`insertBlock: name must be letters, digits or '_' (it becomes part of parameter names), got '${name}'`);
    }
    if (typeof (block as { forward?: unknown }).forward !== 'function' || !(block instanceof Module)) {
      throw new Error('insertBlock: a block must be a Module with forward(hidden, ctx) -> hidden');
    }
    const slot = name === undefined ? `${position}_${layer}` : `${position}_${layer}_${name}`;
    if (this.entries.some((e) => e.prefix.endsWith(`.${slot}`))) {
      throw new Error(
        `insertBlock: a block is already inserted as '${this.prefix}.${slot}'; give the new one a name ` +
          `(insertBlock(block, { layer: ${layer}, position: '${position}', name: 'xattn' }))`,
      );
    }
    this.addModule(slot, block);
    const info: InsertedBlockInfo = { layer, position, prefix: `${this.prefix}.${slot}`, block };
    this.entries.push(info);
    return info;
  }

  /** The blocks at one slot, in insertion order. */
  at(position: 'before' | 'after', layer: number): InsertedBlockInfo[] {
    return this.entries.filter((e) => e.position === position && e.layer === layer);
  }

  list(): readonly InsertedBlockInfo[] {
    return this.entries;
  }
}
