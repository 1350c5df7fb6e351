/**
 * `@chimera/core/hub`: downloads from the Hugging Face Hub into the cache Python's huggingface_hub uses, with
 * revision pinning, resumable transfers, HF_TOKEN and a progress line. Node-only, and a separate entry so that
 * `@chimera/core` itself stays free of it; `@huggingface/hub` loads only when a request is made.
 *
 * @packageDocumentation
 */
export { downloadModelFiles, type HubDownloadOptions, type HubFileSelection, type HubSnapshot } from './download-model';
export { resolveModelPath } from './resolve-model-path';
export { hubCacheDir, isHubRepoId, repoCacheDir } from './cache-layout';
export { DownloadProgressDisplay, type DownloadProgressEvent, type DownloadProgressOption } from './download-progress';
export { HubHttpError } from './hub-http';
