export { Module, ModuleList, globToRegExp, matchName, type NamePattern, type LoadStateDictOptions, type LoadStateDictResult, type ParameterInfo } from './module';
export * as init from './init';
export { Linear, type LinearOptions } from './linear';
export { LayerNorm, RMSNorm, type NormOptions } from './norm';
