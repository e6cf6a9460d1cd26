// Offline support: every same-origin GET is answered from the network when there is one (so a
// new build is never hidden behind a stale copy) and from the cache when there is not.
const CACHE = 'coconut-v1';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(request, copy));
        }
        return response;
      })
      .catch(() => caches.match(request, { ignoreSearch: true }).then((hit) => hit || Response.error())),
  );
});

// The page sends the URLs it loaded before this worker was in control (the wasm, the scripts,
// the weights), so that the first visit already works offline afterwards.
// It answers on the port it was given with how many could not be stored.
self.addEventListener('message', (event) => {
  const urls = (event.data && event.data.cache) || [];
  const reply = event.ports[0];
  event.waitUntil(
    caches.open(CACHE)
      .then((cache) => Promise.all(urls.map((url) => cache.add(url).then(() => 0, () => 1))))
      .then((failures) => reply?.postMessage({ total: urls.length, failed: failures.reduce((a, b) => a + b, 0) })),
  );
});
