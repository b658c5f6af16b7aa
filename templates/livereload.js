/* devserve live reload: injected into HTML pages under --reload (see README "Live reload").
 *
 * Listens on /__devserve/events (Server-Sent Events) with the per-run token from its own
 * <script> tag. The first message of every stream names the worker that serves it (its boot
 * id): a different one than the worker that rendered this page means new code is live, so the
 * page reloads, once. A stream ends ("bye") when its worker drains; the script reconnects at
 * once, and after errors with backoff (100 ms doubling to 3 s). "change" messages come without a new worker: a template or static
 * file changed. CSS-only changes swap the stylesheets in place; anything else reloads.
 */
(function () {
  "use strict";
  var me = document.currentScript;
  if (!me || window.__devserveLiveReload || typeof EventSource === "undefined") {
    return;
  }
  window.__devserveLiveReload = true;
  var token = me.getAttribute("data-token") || "";
  var boot = me.getAttribute("data-boot") || "";
  var base = me.getAttribute("data-base") || "";
  // The last asset change the worker had seen when it rendered this page.
  var seq = parseInt(me.getAttribute("data-seq") || "0", 10) || 0;
  var KEY = "devserve-reloaded-for";
  var delay = 100;
  var source = null;
  var timer = null;
  var reloading = false;
  document.documentElement.classList.add("devserve-live");

  function log(text) {
    if (window.console && console.debug) {
      console.debug("[devserve] " + text);
    }
  }

  function remembered() {
    try {
      return window.sessionStorage.getItem(KEY);
    } catch (e) {
      return null;
    }
  }

  function remember(value) {
    try {
      if (value === null) {
        window.sessionStorage.removeItem(KEY);
      } else {
        window.sessionStorage.setItem(KEY, value);
      }
    } catch (e) {
      /* no storage (sandboxed frame): the boot id check alone applies */
    }
  }

  function reload(reason) {
    if (reloading) {
      return;
    }
    reloading = true;
    log("reloading: " + reason);
    if (source) {
      source.close();
    }
    window.location.reload();
  }

  function sameFile(href, paths) {
    var path;
    try {
      path = new URL(href, window.location.href).pathname;
    } catch (e) {
      return false;
    }
    for (var i = 0; i < paths.length; i++) {
      var name = paths[i].split("/").pop();
      if (name && path.slice(-name.length - 1) === "/" + name) {
        return true;
      }
    }
    return false;
  }

  function swapStyles(paths) {
    var links = document.querySelectorAll('link[rel~="stylesheet"][href]');
    var matching = [];
    for (var i = 0; i < links.length; i++) {
      if (sameFile(links[i].href, paths)) {
        matching.push(links[i]);
      }
    }
    if (!matching.length) {
      matching = Array.prototype.slice.call(links);
    }
    var stamp = String(Date.now());
    matching.forEach(function (link) {
      var url = new URL(link.href, window.location.href);
      url.searchParams.set("__devserve", stamp);
      var fresh = link.cloneNode(false);
      fresh.href = url.href;
      fresh.addEventListener("load", function () { link.remove(); });
      fresh.addEventListener("error", function () { fresh.remove(); });
      link.after(fresh);
    });
    log("swapped " + matching.length + " stylesheet(s)");
  }

  function banner(text) {
    var old = document.getElementById("devserve-banner");
    if (old) {
      old.remove();
    }
    var box = document.createElement("div");
    box.id = "devserve-banner";
    box.setAttribute("role", "alert");
    box.style.cssText = "position:fixed;left:16px;right:16px;bottom:16px;z-index:2147483647;" +
      "padding:12px 44px 12px 16px;border-radius:10px;background:#c2261b;color:#fff;" +
      "font:14px/1.4 system-ui,sans-serif;box-shadow:0 6px 24px rgba(0,0,0,.25)";
    box.textContent = "devserve: " + text + " Details are in the terminal.";
    var close = document.createElement("button");
    close.type = "button";
    close.textContent = "\u00d7";
    close.setAttribute("aria-label", "Dismiss");
    close.style.cssText = "position:absolute;right:10px;top:6px;border:0;background:none;" +
      "color:#fff;font-size:22px;cursor:pointer";
    close.addEventListener("click", function () { box.remove(); });
    box.appendChild(close);
    document.body.appendChild(box);
  }

  function schedule() {
    if (timer !== null || reloading) {
      return;
    }
    timer = window.setTimeout(connect, delay);
    delay = Math.min(delay * 2, 3000);
  }

  function connect() {
    timer = null;
    var url = base + "/__devserve/events?token=" + encodeURIComponent(token);
    source = new EventSource(url);
    source.addEventListener("hello", function (event) {
      var data = JSON.parse(event.data);
      delay = 100;
      document.documentElement.classList.add("devserve-connected");
      if (data.boot === boot) {
        remember(null);
        if (typeof data.seq === "number" && data.seq > seq) {
          // A template or static file changed after this page was rendered, before this
          // stream was there to hear it.
          seq = data.seq;
          reload("changed while the page loaded");
        }
        return;
      }
      // One reload per new worker: if this page still comes from an older one after a
      // reload (a cache answered), do not loop.
      if (remembered() === data.boot) {
        log("page is older than the server, but it was reloaded once already");
        return;
      }
      remember(data.boot);
      reload(data.broken ? "the new code is broken" : "new code is live");
    });
    source.addEventListener("change", function (event) {
      var data = JSON.parse(event.data);
      if (data.kind === "css") {
        swapStyles(data.paths || []);
      } else if (data.kind === "crash") {
        banner(data.message || "The new code crashed while starting.");
      } else {
        reload("changed: " + (data.paths || []).join(", "));
      }
    });
    source.addEventListener("bye", function () {
      // This worker drains: the next one is ready (or starting), reconnect right away.
      document.documentElement.classList.remove("devserve-connected");
      source.close();
      delay = Math.min(delay, 50);
      schedule();
    });
    source.onerror = function () {
      document.documentElement.classList.remove("devserve-connected");
      source.close();
      schedule();
    };
  }

  window.addEventListener("pageshow", function (event) {
    if (event.persisted && source && source.readyState === EventSource.CLOSED) {
      schedule();
    }
  });
  connect();
})();
