/**
 * Where a loader's argument points: a local folder or file stays as it is, and an `org/name` that is no local
 * path is fetched from the Hub into the HF cache (download-model.ts), giving the snapshot folder. A local folder
 * wins over a Hub id of the same name, as in transformers.
 */
import { promises as fs } from 'node:fs';
import { isHubRepoId } from './cache-layout';
import { downloadModelFiles, type HubDownloadOptions, type HubFileSelection } from './download-model';

/**
 * `pathOrId` when it exists locally; else, for an `org/name` id, the snapshot folder holding `selection` after
 * downloadModelFiles; else `pathOrId` unchanged, for the loader to report.
 */
export async function resolveModelPath(pathOrId: string, selection: HubFileSelection, options: HubDownloadOptions = {}): Promise<string> {
  if (await fs.stat(pathOrId).then(() => true, () => false)) return pathOrId;
  // Anything else that is not an id is left for the loader to report as a missing path.
  if (!isHubRepoId(pathOrId)) return pathOrId;
  try {
    return (await downloadModelFiles(pathOrId, selection, options)).dir;
  } catch (error) {
    // A mistyped local path looks like an id too: say that both were tried.
    throw new Error(`${(error as Error).message} (no local folder ${pathOrId} exists either)`, { cause: error });
  }
}
