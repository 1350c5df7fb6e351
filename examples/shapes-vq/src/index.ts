// @chimera-examples/shapes-vq: the VQ tokenizer of the shapes generation set, shared by the generating examples.
export {
  trainShapesVQ,
  loadOrTrainShapesVQ,
  reportShapesVQ,
  reconstruct,
  heldOutImages,
  generationDataset,
  toPixels,
  type TrainShapesVQOptions,
  type ShapesVQReport,
} from './shapes-vq';
