// The Home Assistant intents dataset (bench/data/), as rows
// { text, intent, template, split }: what the page tests correct, probe and
// build bundles from.
import { readFileSync } from 'node:fs';

/** A small RFC 4180 reader: the dataset quotes fields with commas. */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n') { row.push(field); rows.push(row); row = []; field = ''; }
    else if (c !== '\r') field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  const [header, ...body] = rows;
  return body.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])));
}

export const INTENT_ROWS = parseCsv(
  readFileSync(new URL('../../bench/data/home-assistant-intents-en.csv', import.meta.url), 'utf8'),
);
