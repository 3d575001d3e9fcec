/* Relay web UI: small vendored script, no framework, no CDN (SPEC S11.1).
 *
 * Pages are rendered on the server. This script sends forms and buttons to the JSON API with the
 * session cookie and the CSRF header, shows API errors next to the form, copies tokens, switches
 * channel-type settings, refreshes the alert list every 15 seconds and handles the alert page's
 * keyboard shortcuts (a = acknowledge, r = resolve).
 */
(function () {
  "use strict";

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return "";
  }

  function api(method, url, body) {
    var headers = { Accept: "application/json" };
    var csrf = cookie("relay_csrf");
    if (csrf) headers["X-CSRF-Token"] = csrf;
    var init = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined && body !== null) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        return { ok: response.ok, status: response.status, data: data, headers: response.headers };
      });
    }, function () {
      return { ok: false, status: 0, data: { error: "network_error", message: "Relay did not answer; check the connection." } };
    });
  }

  function clear(el) { while (el && el.firstChild) el.removeChild(el.firstChild); }

  function text(tag, value, cls) {
    var el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  }

  function statusBox(scope) {
    if (!scope) return null;
    if (scope.classList && scope.classList.contains("form-status")) return scope;
    return scope.querySelector(".form-status");
  }

  function showOk(box, message) {
    if (!box) return;
    clear(box);
    box.className = "form-status ok";
    box.appendChild(text("p", "✓ " + message));
  }

  function showError(box, result) {
    var data = result.data || {};
    var message = data.message || ("Request failed (HTTP " + result.status + ")");
    if (!box) { window.alert(message); return; }
    clear(box);
    box.className = "form-status error";
    var head = text("p", "");
    head.appendChild(text("strong", "Error" + (data.error ? " (" + data.error + ")" : "") + ": "));
    head.appendChild(document.createTextNode(message));
    box.appendChild(head);
    var details = data.details || [];
    if (details.length) {
      var list = document.createElement("ul");
      details.forEach(function (d) {
        list.appendChild(text("li", (d.loc ? d.loc + ": " : "") + (d.message || "")));
      });
      box.appendChild(list);
    }
    if (data.missing_scopes) box.appendChild(text("p", "Missing scopes: " + data.missing_scopes.join(", ")));
    if (data.error_id) box.appendChild(text("p", "Error id for the logs: " + data.error_id));
  }

  /* --- time zones: a datetime-local value in an IANA zone -> UTC ISO string --- */
  function zoneOffsetMs(date, zone) {
    var fmt = new Intl.DateTimeFormat("en-US", {
      timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit"
    });
    var p = {};
    fmt.formatToParts(date).forEach(function (part) { p[part.type] = part.value; });
    var asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour % 24, +p.minute, +p.second);
    return asUtc - date.getTime();
  }

  function localToUtc(value, zone) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(value);
    if (!m) return value;
    var guess = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
    try {
      var first = guess - zoneOffsetMs(new Date(guess), zone || "UTC");
      var second = guess - zoneOffsetMs(new Date(first), zone || "UTC");
      return new Date(second).toISOString().replace(".000Z", "Z");
    } catch (e) {
      return value;
    }
  }

  /* --- forms -> JSON --- */
  function setPath(target, name, value) {
    var keys = name.split(".");
    var node = target;
    for (var i = 0; i < keys.length - 1; i++) {
      if (typeof node[keys[i]] !== "object" || node[keys[i]] === null) node[keys[i]] = {};
      node = node[keys[i]];
    }
    node[keys[keys.length - 1]] = value;
  }

  function serialize(form) {
    var body = {};
    var problems = [];
    var nullEmpty = form.hasAttribute("data-null-empty");
    var lists = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.matches(":disabled") || el.type === "submit" || el.type === "button") return;
      var type = el.getAttribute("data-type") || "";
      var raw = el.value;
      if (el.type === "checkbox") {
        if (type === "intlist" || type === "strlist") {
          if (!lists[el.name]) lists[el.name] = [];
          if (el.checked) lists[el.name].push(type === "intlist" ? parseInt(raw, 10) : raw);
          return;
        }
        setPath(body, el.name, el.checked);
        return;
      }
      var label = (form.querySelector('label[for="' + el.id + '"]') || {}).textContent || el.name;
      if (raw === "" || raw === undefined) {
        if (el.hasAttribute("data-skip-empty")) return;
        if (type === "list" && el.hasAttribute("data-keep-empty")) setPath(body, el.name, []);
        else if (el.hasAttribute("data-keep-empty")) setPath(body, el.name, "");
        else if (nullEmpty || el.hasAttribute("data-null-empty")) setPath(body, el.name, null);
        return;
      }
      var value = raw;
      if (type === "int") {
        value = parseInt(raw, 10);
        if (isNaN(value)) { problems.push(label.trim() + ": a whole number is required"); return; }
      } else if (type === "number") {
        value = parseFloat(raw);
        if (isNaN(value)) { problems.push(label.trim() + ": a number is required"); return; }
      } else if (type === "bool") {
        value = raw === "true";
      } else if (type === "json") {
        try { value = JSON.parse(raw); } catch (e) { problems.push(label.trim() + ": not valid JSON"); return; }
      } else if (type === "list") {
        value = raw.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
      } else if (type === "localtime") {
        value = localToUtc(raw, form.getAttribute("data-tz"));
      }
      setPath(body, el.name, value);
    });
    Object.keys(lists).forEach(function (name) { setPath(body, name, lists[name]); });
    return { body: body, problems: problems };
  }

  function after(then, result, origin) {
    var data = result.data || {};
    then = then || "reload";
    if (then === "reload") { window.location.reload(); return; }
    if (then.indexOf("redirect:") === 0) {
      window.location.assign(then.slice(9).replace("{id}", encodeURIComponent(data.id)));
      return;
    }
    if (then === "refresh") { refreshRegion(true); return; }
    if (then === "token") { showRouteToken(data, origin); return; }
    if (then === "apitoken") {
      var panel = document.getElementById("api-token-panel");
      document.getElementById("api-token-value").value = data.token || "";
      panel.hidden = false;
      panel.focus();
      return;
    }
    if (then === "show") { showResult(origin, result); }
  }

  function sampleCurl(url, source, token, samples) {
    var payload = JSON.stringify(samples[source] || samples.webhook || {});
    return "curl -X POST " + url + " -H 'Authorization: Bearer " + token + "' " +
      "-H 'Content-Type: application/json' -d '" + payload + "'";
  }

  function showRouteToken(data, origin) {
    var panel = document.getElementById("token-panel");
    if (!panel) { window.location.reload(); return; }
    var samples = {};
    try { samples = JSON.parse(origin.getAttribute("data-samples") || "{}"); } catch (e) { samples = {}; }
    document.getElementById("intake-token").value = data.intake_token || "";
    document.getElementById("intake-url").value = data.intake_url || "";
    document.getElementById("intake-curl").value = sampleCurl(data.intake_url, data.source, data.intake_token, samples);
    var link = document.getElementById("token-route-link");
    clear(link);
    if (data.id) {
      var a = text("a", "Open route " + (data.name || data.id));
      a.href = "/routes/" + data.id;
      link.appendChild(a);
    }
    if (origin.tagName === "FORM") origin.reset();
    var empty = document.getElementById("routes-empty");
    if (empty) empty.hidden = true;
    panel.hidden = false;
    panel.focus();
    panel.scrollIntoView();
  }

  function badge(kind, value) {
    return text("span", value, "badge " + kind + "-" + value);
  }

  function showResult(origin, result) {
    var sel = origin.getAttribute("data-out");
    var box = sel ? document.querySelector(sel) : statusBox(origin.closest("form,section,td"));
    if (!box) return;
    clear(box);
    var data = result.data || {};
    var list = document.createElement("ul");
    list.className = "results";
    var failed = false;
    if (Array.isArray(data.results)) {
      /* a channel or subscription test: one line per destination (S6.1, S8.7) */
      if (!data.results.length) list.appendChild(text("li", "No destination to test."));
      data.results.forEach(function (r) {
        var li = document.createElement("li");
        li.appendChild(badge("result", r.status || "unknown"));
        var where = (r.channel_name || ("channel " + r.channel_id)) + (r.channel_type ? " (" + r.channel_type + ")" : "");
        li.appendChild(document.createTextNode(" " + where + (r.recipient ? " → " + r.recipient : "") + (r.error ? ": " + r.error : "")));
        if (r.status === "failed") failed = true;
        list.appendChild(li);
      });
      box.appendChild(text("p", (failed ? "✗ " : "✓ ") + "Test " + (failed ? "had failures" : "sent") + " (test id " + data.test_id + ")"));
    } else if (data.group_id) {
      /* a route test alert: where it went */
      box.appendChild(text("p", "✓ Test alert: " + (data.outcome || "accepted") + (data.routing_error ? " — " + data.routing_error : "")));
      var li = document.createElement("li");
      var a = text("a", "Open alert #" + data.group_id);
      a.href = "/alerts/" + data.group_id;
      li.appendChild(a);
      list.appendChild(li);
      if (data.trace_id) {
        var li2 = document.createElement("li");
        var t = text("a", "Explain trace " + data.trace_id);
        t.href = "/alerts?trace_id=" + encodeURIComponent(data.trace_id);
        li2.appendChild(t);
        list.appendChild(li2);
      }
    } else {
      box.appendChild(text("p", "✓ Done"));
      Object.keys(data).forEach(function (k) {
        if (data[k] !== null && typeof data[k] !== "object") list.appendChild(text("li", k + ": " + data[k]));
      });
    }
    box.className = "form-status " + (failed ? "error" : "ok");
    box.appendChild(list);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.classList.contains("js-login")) { event.preventDefault(); login(form); return; }
    if (!form.classList.contains("js-api")) return;
    event.preventDefault();
    var box = statusBox(form);
    if (!form.checkValidity()) { form.reportValidity(); return; }
    var s = serialize(form);
    if (s.problems.length) {
      showError(box, { status: 400, data: { error: "validation_error", message: "Please fix the form", details: s.problems.map(function (p) { return { message: p }; }) } });
      return;
    }
    var submit = form.querySelector('[type="submit"]');
    if (submit) submit.disabled = true;
    api(form.getAttribute("data-method") || "POST", form.getAttribute("data-url"), s.body).then(function (result) {
      if (submit) submit.disabled = false;
      if (!result.ok) { showError(box, result); return; }
      showOk(box, "Saved");
      after(form.getAttribute("data-then"), result, form);
    });
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button") : null;
    if (!button) return;
    if (button.classList.contains("js-act")) {
      var question = button.getAttribute("data-confirm");
      if (question && !window.confirm(question)) return;
      var body = null;
      if (button.hasAttribute("data-body")) {
        try { body = JSON.parse(button.getAttribute("data-body")); } catch (e) { body = null; }
      }
      var nowField = button.getAttribute("data-now");
      if (nowField) {
        /* e.g. "Expire now": the current time, not the time the page was rendered */
        body = body || {};
        body[nowField] = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
      }
      var noteSel = button.getAttribute("data-note");
      var note = noteSel ? document.querySelector(noteSel) : null;
      if (note && note.value.trim()) {
        body = body || {};
        body.comment = note.value.trim();
      }
      var outSel = button.getAttribute("data-out");
      var box = outSel ? document.querySelector(outSel) : statusBox(button.closest("section,form,header")) ;
      button.disabled = true;
      api(button.getAttribute("data-method") || "POST", button.getAttribute("data-url"), body).then(function (result) {
        button.disabled = false;
        if (!result.ok) { showError(box, result); return; }
        after(button.getAttribute("data-then"), result, button);
      });
    } else if (button.classList.contains("js-copy")) {
      copy(button);
    } else if (button.classList.contains("js-logout")) {
      api("POST", "/api/auth/logout").then(function () { window.location.assign("/login"); });
    }
  });

  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.classList.contains("js-type-switch")) switchType(el);
    if (el.classList.contains("js-put")) {
      var body = {};
      body[el.getAttribute("data-field")] = el.value;
      api("PUT", el.getAttribute("data-url"), body).then(function (result) {
        var box = statusBox(el.closest("section"));
        if (!result.ok) showError(box, result); else showOk(box, "Saved");
      });
    }
  });

  function switchType(select) {
    var group = select.getAttribute("data-target");
    document.querySelectorAll("." + group).forEach(function (fs) {
      var on = fs.getAttribute("data-kind") === select.value;
      fs.hidden = !on;
      fs.disabled = !on;
    });
  }

  function copy(button) {
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    var value = source.value !== undefined ? source.value : source.textContent;
    var done = function () {
      var old = button.getAttribute("data-label") || button.textContent;
      button.setAttribute("data-label", old);
      button.textContent = "Copied ✓";
      setTimeout(function () { button.textContent = old; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(done, function () { legacyCopy(source); done(); });
    } else {
      legacyCopy(source);
      done();
    }
  }

  function legacyCopy(source) {
    if (source.select) {
      source.select();
      try { document.execCommand("copy"); } catch (e) { /* the text stays selected for Ctrl+C */ }
    }
  }

  /* --- login --- */
  var countdown = null;
  function login(form) {
    var box = document.getElementById("login-status");
    var button = form.querySelector('[type="submit"]');
    var body = { username: form.elements.username.value, password: form.elements.password.value };
    if (!body.username || !body.password) {
      showError(box, { status: 400, data: { message: "Enter your username and password." } });
      return;
    }
    button.disabled = true;
    api("POST", "/api/auth/login", body).then(function (result) {
      if (result.ok) {
        window.location.assign(form.getAttribute("data-next") || "/alerts");
        return;
      }
      button.disabled = false;
      if (result.status === 429) {
        var wait = (result.data && result.data.retry_after) || parseInt(result.headers.get("Retry-After") || "60", 10);
        throttled(box, button, wait);
        return;
      }
      showError(box, result);
    });
  }

  function throttled(box, button, seconds) {
    clearInterval(countdown);
    var left = seconds;
    button.disabled = true;
    var render = function () {
      clear(box);
      box.className = "form-status error";
      box.appendChild(text("p", "Too many failed login attempts. Try again in " + left + " second" + (left === 1 ? "" : "s") + "."));
    };
    render();
    countdown = setInterval(function () {
      left -= 1;
      if (left <= 0) {
        clearInterval(countdown);
        button.disabled = false;
        clear(box);
        box.className = "form-status";
        box.appendChild(text("p", "You can try again now."));
        return;
      }
      render();
    }, 1000);
  }

  /* --- alert list auto-refresh --- */
  function refreshRegion(force) {
    var region = document.getElementById("alerts-region");
    if (!region) { window.location.reload(); return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.redirected && response.url.indexOf("/login") !== -1) { window.location.assign(response.url); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("alerts-region");
        if (!fresh) return;
        var focusedId = document.activeElement && region.contains(document.activeElement) ? document.activeElement.getAttribute("aria-label") : null;
        region.innerHTML = fresh.innerHTML;
        var note = document.getElementById("refresh-note");
        if (note) note.textContent = "Updated " + new Date().toLocaleTimeString() + "; refreshes every 15 s.";
        if (focusedId) {
          var again = region.querySelector('[aria-label="' + focusedId.replace(/"/g, '\\"') + '"]');
          if (again) again.focus();
        }
      }, function () { /* keep the current list; the next tick retries */ });
    return force;
  }

  function startRefresh() {
    var region = document.getElementById("alerts-region");
    if (!region) return;
    var seconds = parseInt(region.getAttribute("data-refresh") || "15", 10);
    setInterval(function () { if (!document.hidden) refreshRegion(false); }, seconds * 1000);
  }

  /* --- keyboard shortcuts (S11.5): a = acknowledge, r = resolve on the alert page --- */
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    var target = event.target;
    var tag = target && target.tagName ? target.tagName.toLowerCase() : "";
    if (tag === "input" || tag === "textarea" || tag === "select" || (target && target.isContentEditable)) return;
    var key = (event.key || "").toLowerCase();
    if (key !== "a" && key !== "r") return;
    var button = document.querySelector('button[data-shortcut="' + key + '"]');
    if (!button || button.disabled) return;
    event.preventDefault();
    button.click();
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".js-type-switch").forEach(switchType);
    startRefresh();
  });
})();
