// HF checkpoints: the Llama-family key-remap table, loadPretrained / loadPretrainedWeights and savePretrained.
export { LLAMA_HF_REMAP } from './hf-keys';
export {
  loadPretrained,
  loadPretrainedWeights,
  readPretrainedConfig,
  type LoadPretrainedOptions,
  type LoadPretrainedReport,
  type PretrainedModel,
} from './load-pretrained';
export {
  savePretrained,
  type SavePretrainedOptions,
  type SavePretrainedResult,
  type SavableTokenizer,
} from './save-pretrained';
