// The model page's two actions: look for the uncovered sites' feeds, and add one of them to feeds.yaml.
"use strict";
(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const status = document.getElementById("status");

  function say(text, bad) {
    status.textContent = text;
    status.classList.toggle("bad", Boolean(bad));
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body),
    });
    let data = {};
    try { data = await response.json(); } catch (error) { data = {error: `the desk answered ${response.status}`}; }
    if (!response.ok) throw new Error(data.error || `the desk answered ${response.status}`);
    return data;
  }

  const discover = document.getElementById("discover");
  if (discover) {
    discover.addEventListener("click", async () => {
      discover.disabled = true;
      say("looking for the sites' feeds…");
      try {
        const data = await post("/model/discover", {});
        say(`${data.found} feed(s) found; reloading`);
        window.location.reload();
      } catch (error) {
        say(error.message, true);
        discover.disabled = false;
      }
    });
  }

  for (const button of document.querySelectorAll("button.add-feed")) {
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const data = await post("/model/feeds", {site: button.dataset.site});
        say(`added ${data.name} (${data.url}) to feeds.yaml; the next polling pass fetches it`);
        button.textContent = "Added";
        button.closest("tr").dataset.added = "1";
      } catch (error) {
        say(error.message, true);
        button.disabled = false;
      }
    });
  }
})();
