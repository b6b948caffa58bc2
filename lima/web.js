"use strict";
// What lima's local pages share (served at /lima-web.js by lima/web.py): the token the server
// handed this page, sent back on every request, and actions run one after another in the
// order their keys were pressed, so none is lost while a request is in flight.
const LimaWeb = (() => {
  const KEY = "lima-token:" + location.host;
  const meta = document.querySelector('meta[name="lima-token"]');
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    // off loopback the person opens URL#token=...; keep it for this tab, out of the address bar
    sessionStorage.setItem(KEY, hash.get("token"));
    hash.delete("token");
    const rest = hash.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }
  const token = () => (meta ? meta.content : sessionStorage.getItem(KEY)) || "";

  async function api(path, body) {
    const headers = { "X-Lima-Token": token() };
    const opts = { headers, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) {
      opts.method = "POST";
      headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(path, opts);
    let data = null;
    try { data = await res.json(); } catch (e) { throw new Error(`${res.status} ${res.statusText}`); }
    if (!res.ok) {
      const err = data && data.error;
      throw new Error((err && err.message) || err || res.statusText);
    }
    return data;
  }

  let chain = Promise.resolve();
  let pending = 0;
  function queue(action, onError) {
    pending += 1;
    chain = chain.then(action).catch(onError).finally(() => { pending -= 1; });
    return chain;
  }

  // true while the focus is somewhere keys are typed, not pressed as commands
  function typing(ev) {
    const t = ev.target;
    return t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement;
  }

  return { api, queue, typing, busy: () => pending > 0 };
})();
