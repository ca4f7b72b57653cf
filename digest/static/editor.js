// Editor workspace behaviour. Loaded as a file: the CSP forbids inline scripts.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]');

  // Live Markdown preview: the server renders and sanitizes (digest/markdown.py), so
  // the preview shows exactly what readers will get, never raw script.
  const source = document.getElementById("body_md");
  const preview = document.getElementById("preview");
  const status = document.getElementById("preview-status");
  if (source && preview) {
    let timer = null;
    let sent = 0;
    const render = async () => {
      const ticket = ++sent;
      try {
        const response = await fetch(preview.dataset.previewUrl, {
          method: "POST",
          credentials: "same-origin",
          headers: {"Content-Type": "application/json", "X-CSRFToken": csrf ? csrf.content : ""},
          body: JSON.stringify({markdown: source.value}),
        });
        if (ticket !== sent) return; // a newer keystroke already asked again
        const data = await response.json();
        if (!response.ok) throw new Error(data.error || response.statusText);
        preview.innerHTML = data.html;
        preview.dataset.rendered = String(ticket);
        if (status) status.textContent = "";
      } catch (error) {
        if (status) status.textContent = "The preview could not be updated: " + error.message;
      }
    };
    source.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(render, 250);
    });
  }

  // A CSV import's live progress: poll its status, move the bar, and reload the page
  // when the import needs a decision or is finished (the page then shows the result).
  const progress = document.getElementById("import-progress");
  if (progress) {
    const bar = document.getElementById("import-bar");
    const text = document.getElementById("import-progress-text");
    let delay = 500;
    const poll = async () => {
      try {
        const response = await fetch(progress.dataset.statusUrl, {credentials: "same-origin", cache: "no-store"});
        if (!response.ok) throw new Error(response.statusText);
        const data = await response.json();
        if (data.state !== progress.dataset.state) {
          window.location.reload();
          return;
        }
        bar.value = data.percent;
        bar.textContent = Math.round(data.percent) + "%";
        text.textContent = data.text;
        delay = 500;
      } catch (error) {
        text.textContent = "Progress could not be fetched (" + error.message + "); trying again…";
        delay = Math.min(delay * 2, 8000);
      }
      setTimeout(poll, delay);
    };
    setTimeout(poll, delay);
  }

  // Forms that destroy something ask first.
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
})();
