// Trunk's hook into loading the wasm (index.html: data-initializer): the download's progress and
// a failure reach the page (js/main.js), which shows them, instead of a bar stuck at zero and a
// page that waits forever. Kept on `window.coconutWasm` too, for a page script that starts late.
export default function initializer() {
  const state = (window.coconutWasm = { current: 0, total: 0, failed: null });
  const tell = () => window.dispatchEvent(new CustomEvent('coconut-wasm', { detail: state }));
  return {
    onProgress: ({ current, total }) => {
      state.current = current;
      state.total = total;
      tell();
    },
    onFailure: (error) => {
      state.failed = error?.message || String(error);
      tell();
    },
  };
}
