import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { Failpoints } from '@kyrodb/log';
import { loadConfig } from '../src/config.js';
import { startNode } from '../src/node.js';
import type { KyroNode } from '../src/node.js';

/** A fresh temp dir. */
export function tmpDir(prefix = 'kyro-api-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** An in-process node on a temp data dir (no listening socket: use node.app.inject). */
export async function inProcessNode(overrides: Record<string, unknown> = {}, o: { failpointsApi?: boolean } = {}): Promise<KyroNode & { dir: string; fp: Failpoints }> {
  const dir = tmpDir();
  const cfg = loadConfig({ env: {}, overrides: { 'storage.data_dir': path.join(dir, 'data'), 'backup.local_dir': path.join(dir, 'backups'), 'backup.enabled': false, ...overrides } });
  const fp = new Failpoints();
  const node = await startNode(cfg, { listen: false, registry: new Registry(), failpoints: fp, failpointsApi: o.failpointsApi ?? false, logger: () => undefined });
  return Object.assign(node, { dir, fp });
}
