// Editor workspace behaviour. Loaded as a file: the CSP forbids inline scripts.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]');

  // Live Markdown preview: the server renders and sanitizes (digest/markdown.py), so
  // the preview shows exactly what readers will get, never raw script.
  const source = document.querySelector("[data-markdown-source]");
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

  // Images in a post's text: the file button, a file dropped on the text or the tools,
  // or an image pasted into the text is uploaded to the media library (which decodes and
  // re-encodes it, or says why not) and its Markdown is put where the cursor is.
  const tools = document.getElementById("image-tools");
  if (tools && source) {
    const picker = document.getElementById("image-file");
    const altInput = document.getElementById("image-alt");
    const said = document.getElementById("image-status");
    const insert = (markdown) => {
      const start = source.selectionStart ?? source.value.length;
      const end = source.selectionEnd ?? start;
      const before = source.value.slice(0, start);
      const block = (before && !before.endsWith("\n\n") ? (before.endsWith("\n") ? "\n" : "\n\n") : "") + markdown + "\n\n";
      source.value = before + block + source.value.slice(end);
      source.selectionStart = source.selectionEnd = before.length + block.length;
      source.dispatchEvent(new Event("input"));
    };
    const upload = async (file) => {
      said.textContent = "Uploading " + file.name + "…";
      const form = new FormData();
      form.append("file", file, file.name || "pasted.png");
      form.append("alt", altInput.value);
      form.append("csrf_token", csrf ? csrf.content : "");
      try {
        const response = await fetch(tools.dataset.uploadUrl, {
          method: "POST", credentials: "same-origin", body: form,
          headers: {"Accept": "application/json"},
        });
        const data = await response.json().catch(() => ({error: response.statusText}));
        if (!response.ok) throw new Error(data.error || response.statusText);
        insert(data.markdown);
        said.textContent = data.alt
          ? "Added " + file.name + " (" + data.width + " × " + data.height + ")."
          : "Added " + file.name + ". Describe it between the brackets of ![…] before publishing.";
        altInput.value = "";
      } catch (error) {
        said.textContent = "Not added: " + error.message;
      }
    };
    picker.addEventListener("change", () => {
      Array.from(picker.files || []).forEach(upload);
      picker.value = "";
    });
    for (const target of [tools, source]) {
      target.addEventListener("dragover", (event) => {
        if (event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files")) {
          event.preventDefault();
          tools.classList.add("dragging");
        }
      });
      target.addEventListener("dragleave", () => tools.classList.remove("dragging"));
      target.addEventListener("drop", (event) => {
        tools.classList.remove("dragging");
        if (event.dataTransfer && event.dataTransfer.files.length) {
          event.preventDefault();
          Array.from(event.dataTransfer.files).forEach(upload);
        }
      });
    }
    source.addEventListener("paste", (event) => {
      const files = Array.from((event.clipboardData && event.clipboardData.files) || []);
      if (files.length) {
        event.preventDefault();
        files.forEach(upload);
      }
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

  // An issue's send: poll progress.json every second while it is live (sending, paused,
  // or about to start), move the bar and the counts, show the actions that fit, announce
  // status changes (not every count), and fetch the record when the status changes.
  const sending = document.getElementById("sending-live");
  if (sending && sending.dataset.live === "true") {
    const bar = document.getElementById("sending-bar");
    const announce = document.getElementById("sending-announce");
    const statusText = document.getElementById("sending-status-text");
    const badge = document.getElementById("sending-badge");
    const number = (n) => Number(n).toLocaleString("en-US");
    const seconds = (s) => {
      s = Math.max(Math.round(s), 0);
      const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
      return h ? `${h} h ${m} min` : m ? `${m} min ${r} s` : `${r} s`;
    };
    let status = sending.dataset.status;
    let samples = [];
    let delay = 1000;
    const setField = (name, value) => {
      document.querySelectorAll(`[data-field="${name}"]`).forEach((el) => { el.textContent = value; });
    };
    // The server's rate is the average since the start; while watching, the rate over the
    // last ten seconds says more (after a pause, say).
    const currentRate = (data) => {
      const now = performance.now();
      samples.push({at: now, done: data.done});
      samples = samples.filter((s) => now - s.at <= 10000);
      const first = samples[0];
      if (data.status !== "sending" || now - first.at < 3000) return null;
      return (data.done - first.done) / ((now - first.at) / 1000);
    };
    const show = (data) => {
      bar.max = Math.max(data.total, 1);
      bar.value = data.done;
      bar.textContent = data.percent + "%";
      for (const name of ["status_text", "percent", "started_text", "finished_text", "pause_reason", "pause_explanation", "obstacle_text"]) {
        setField(name, data[name] === null ? (name.endsWith("_text") ? "not yet" : "") : data[name]);
      }
      document.querySelectorAll("time[data-utc-field]").forEach((el) => {
        const iso = data[el.dataset.utcField];
        if (iso) {
          el.dateTime = iso;
          el.title = iso.slice(0, 19).replace("T", " ") + " UTC";
        }
      });
      setField("done", number(data.done));
      setField("total", number(data.total));
      const rate = currentRate(data);
      if (rate === null) {
        setField("rate_text", data.rate_text);
        setField("eta_text", data.eta_text);
      } else {
        setField("rate_text", `${rate.toFixed(1)} messages a second`);
        setField("eta_text", rate > 0 ? `about ${seconds((data.total - data.done) / rate)} left` : "–");
      }
      document.querySelectorAll("[data-count]").forEach((el) => {
        el.textContent = number(data.counts[el.dataset.count]);
      });
      document.querySelectorAll("[data-action]").forEach((el) => {
        const name = el.dataset.action;
        el.hidden = name === "none" ? data.actions.length > 0 : !data.actions.includes(name);
      });
      document.getElementById("sending-paused").hidden = data.status !== "paused";
      document.getElementById("sending-obstacle").hidden = !data.obstacle_text;
      document.getElementById("sending-live-note").hidden = !data.live;
      badge.textContent = data.status_label;
      badge.className = "badge badge-" + data.status;
    };
    // The record (failed deliveries, totals) is rendered by the server: take it from the page.
    const refreshRecord = async () => {
      const response = await fetch(window.location.href, {credentials: "same-origin", cache: "no-store"});
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById("sending-record");
      if (fresh) document.getElementById("sending-record").replaceChildren(...fresh.childNodes);
    };
    const poll = async () => {
      let data;
      try {
        const response = await fetch(sending.dataset.progressUrl, {credentials: "same-origin", cache: "no-store"});
        if (!response.ok) throw new Error(response.statusText);
        if (!(response.headers.get("Content-Type") || "").includes("json")) {
          // Sent to the login page: the session ended.
          statusText.textContent = "You are no longer logged in: reload the page to log in and follow the send again.";
          return;
        }
        data = await response.json();
        delay = 1000;
      } catch (error) {
        statusText.textContent = "The progress could not be fetched (" + error.message + "); trying again…";
        delay = Math.min(delay * 2, 16000);
        setTimeout(poll, delay);
        return;
      }
      show(data);
      if (data.status !== status) {
        status = data.status;
        sending.dataset.status = status;
        announce.textContent = data.status_text;
        samples = [];
        await refreshRecord().catch(() => {});
      }
      if (data.live) setTimeout(poll, delay);
    };
    document.getElementById("sending-live-note").hidden = false;
    setTimeout(poll, delay);
  }

  // Forms that destroy something ask first; a form the server already knows would be
  // refused (data-blocked) says why next to its button instead of asking.
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      const target = document.getElementById(form.dataset.blockedTarget || "");
      if (form.dataset.blocked && target) {
        event.preventDefault();
        target.textContent = form.dataset.blocked;
        target.hidden = false;
        target.scrollIntoView({ block: "center" });
        return;
      }
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  // The look form: both previews follow every change, from the server and unsaved.
  const lookForm = document.querySelector("[data-look-form]");
  if (lookForm) {
    const buttons = lookForm.querySelectorAll("button[formtarget]");
    let timer = null;
    const showAll = () => {
      const action = lookForm.action;
      for (const button of buttons) {
        lookForm.action = button.formAction;
        lookForm.target = button.formTarget;
        lookForm.submit();
      }
      lookForm.action = action;
      lookForm.target = "";
    };
    lookForm.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(showAll, 300); });
    lookForm.addEventListener("change", () => { clearTimeout(timer); timer = setTimeout(showAll, 300); });
    showAll();
  }

  // An issue's posts reorder in place: by drag and drop, or with the ↑/↓ buttons (keyboard);
  // the server answers the order it stored (grouped by section), which the list then takes.
  const postList = document.querySelector("ol.issue-posts[data-order-url]");
  if (postList) {
    const orderStatus = document.getElementById("order-status");
    const ids = () => Array.from(postList.querySelectorAll("li[data-post-id]"), (li) => Number(li.dataset.postId));
    const apply = async (response) => {
      const data = await response.json().catch(() => ({error: "The new order could not be saved."}));
      orderStatus.hidden = false;
      if (!response.ok) {
        orderStatus.className = "flash flash-error notice";
        orderStatus.textContent = data.error;
        return;
      }
      const items = new Map(Array.from(postList.children, (li) => [Number(li.dataset.postId), li]));
      data.post_ids.forEach((id) => postList.appendChild(items.get(id)));
      orderStatus.className = "flash flash-success notice";
      orderStatus.textContent = data.message;
    };
    const headers = {"Accept": "application/json", "X-CSRFToken": csrf ? csrf.content : ""};
    let dragged = null;
    postList.querySelectorAll("li[data-post-id]").forEach((li) => {
      li.draggable = true;
      li.addEventListener("dragstart", (event) => {
        dragged = li;
        event.dataTransfer.effectAllowed = "move";
        event.dataTransfer.setData("text/plain", li.dataset.postId);
        li.classList.add("dragging");
      });
      li.addEventListener("dragend", () => li.classList.remove("dragging"));
    });
    postList.addEventListener("dragover", (event) => event.preventDefault());
    postList.addEventListener("drop", async (event) => {
      event.preventDefault();
      const target = event.target.closest("li[data-post-id]");
      if (!dragged) return;
      if (target && target !== dragged) {
        const box = target.getBoundingClientRect();
        postList.insertBefore(dragged, event.clientY > box.top + box.height / 2 ? target.nextSibling : target);
      }
      dragged = null;
      await apply(await fetch(postList.dataset.orderUrl, {
        method: "POST", headers: {...headers, "Content-Type": "application/json"},
        body: JSON.stringify({post_ids: ids()}),
      }));
    });
    postList.querySelectorAll("form[data-move]").forEach((form) => {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        await apply(await fetch(form.action, {method: "POST", headers, body: new FormData(form)}));
        form.querySelector("button").focus();
      });
    });
  }

  // An issue's preview frame grows to the email's height (it may be read, it runs no
  // script), so the page scrolls once rather than a frame inside it; images may load late.
  document.querySelectorAll("iframe[data-fit-height]").forEach((frame) => {
    const fit = () => {
      const doc = frame.contentDocument;
      if (!doc || doc.URL === "about:blank" || !doc.documentElement) return;
      frame.style.height = doc.documentElement.scrollHeight + 2 + "px";
    };
    frame.addEventListener("load", () => {
      fit();
      frame.contentDocument.querySelectorAll("img").forEach((img) => img.addEventListener("load", fit));
    });
    fit();
  });

  // On a phone the navigation folds behind "Menu" (CSS shows the button only there).
  const menuButton = document.querySelector(".menu-toggle");
  if (menuButton) {
    menuButton.hidden = false;
    menuButton.addEventListener("click", () => {
      const open = menuButton.getAttribute("aria-expanded") !== "true";
      menuButton.setAttribute("aria-expanded", String(open));
      menuButton.textContent = open ? "Close menu" : "Menu";
    });
  }

  // A search box with data-filter narrows its list as the editor types (the GET form is
  // the way without JavaScript).
  document.querySelectorAll("input[data-filter]").forEach((input) => {
    const list = document.querySelector(input.dataset.filter);
    const none = document.getElementById("picker-none");
    if (!list) return;
    input.addEventListener("input", () => {
      const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      let shown = 0;
      list.querySelectorAll("li[data-text]").forEach((item) => {
        item.hidden = !words.every((word) => item.dataset.text.includes(word));
        if (!item.hidden) shown += 1;
      });
      if (none) none.hidden = shown > 0;
    });
  });

  // The schedule's time zone is checked against the names the server knows before it is
  // sent, and the message stands next to the field ("Berlin" → "Europe/Berlin?").
  const scheduleForm = document.getElementById("schedule-form");
  const zoneInput = document.getElementById("tz");
  const zoneError = document.getElementById("tz-error");
  if (scheduleForm && zoneInput && zoneError && zoneInput.list) {
    const zones = Array.from(zoneInput.list.options, (option) => option.value);
    scheduleForm.addEventListener("submit", (event) => {
      const name = zoneInput.value.trim();
      if (zones.includes(name)) return;
      event.preventDefault();
      const like = zones.filter((zone) => zone.toLowerCase().endsWith("/" + name.toLowerCase().replace(/ /g, "_")));
      zoneError.textContent = (name ? "“" + name + "” is not a time zone name" : "Give a time zone")
        + (like.length ? ": did you mean " + like.slice(0, 3).join(" or ") + "?" : ", such as Europe/Berlin.");
      zoneError.hidden = false;
      zoneInput.setAttribute("aria-invalid", "true");
      zoneInput.setAttribute("aria-describedby", "tz-error");
      zoneInput.focus({ preventScroll: true });
      zoneError.scrollIntoView({ block: "center" });
    });
  }
})();
