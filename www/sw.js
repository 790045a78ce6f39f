// The demo's service worker: after one visit, the page and the package it
// runs on come from this device when the network is gone, so the page
// starts offline. The model's bundle is not kept here: the library keeps
// it in its own cache (Classifier.load's bundle cache), and a second copy
// would double what the page stores.
//
// Network first, the cache as the fallback: online, a visit always runs
// the files the server has now (a JS glue and its .wasm must come from the
// same build; revalidation makes that cheap: the server answers 304), and
// each good answer refreshes the copy kept for offline.
const CACHE = 'localtune-demo-v1';
// What the page loads before this worker controls it, on the first visit.
// Everything after (the model worker, the glue, the .wasm it picks) is kept
// as it is fetched: the page waits for this worker before loading the model.
const SHELL = ['/', '/app.js', '/style.css', '/pkg/client.js'];

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(SHELL);
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith('localtune-demo-') && key !== CACHE) await caches.delete(key);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith('/bundles/')) return; // the library's cache keeps these
  event.respondWith(networkFirst(event, request));
});

async function networkFirst(event, request) {
  const cache = await caches.open(CACHE);
  let response;
  try {
    response = await fetch(request);
  } catch (offline) {
    const kept = await cache.match(request);
    if (kept) return kept;
    throw offline;
  }
  // Stored beside the answer, not before it: the page streams and compiles
  // the 15 MB .wasm while its copy is written.
  if (response.ok && response.type === 'basic') event.waitUntil(cache.put(request, response.clone()));
  return response;
}
