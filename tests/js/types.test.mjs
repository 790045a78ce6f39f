// The shipped TypeScript types against a small app (tests/js/ts-app),
// compiled with `tsc --strict` as a package user's build would: the app
// imports `localtune` and `localtune/client` by name, through the package's
// exports map, so the .d.ts files cannot drift from the code unnoticed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, rm, symlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const APP = `${ROOT}tests/artifacts/ts-app`;

test('an app compiles against the shipped types with tsc --strict', async () => {
  await rm(APP, { recursive: true, force: true });
  await mkdir(`${APP}/node_modules`, { recursive: true });
  await cp(`${ROOT}tests/js/ts-app`, APP, { recursive: true });
  await symlink(`${ROOT}pkg`, `${APP}/node_modules/localtune`, 'dir');
  const tsc = `${ROOT}node_modules/typescript/bin/tsc`;
  const run = await promisify(execFile)(process.execPath, [tsc, '-p', `${APP}/tsconfig.json`]).then(
    () => ({ ok: true, output: '' }),
    (e) => ({ ok: false, output: `${e.stdout}${e.stderr}` }),
  );
  assert.ok(run.ok, `tsc --strict failed:\n${run.output}`);
});
