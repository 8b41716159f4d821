// The medsec console's only script: times in the browser's time zone, confirmation of
// irreversible actions, and live updates. Pages work without it (plain links and forms);
// nothing here is inline, as the Content-Security-Policy requires.
(function () {
  'use strict';

  function localTimes(root) {
    root.querySelectorAll('time[datetime]').forEach(function (t) {
      var d = new Date(t.getAttribute('datetime'));
      if (!isNaN(d.getTime())) {
        t.title = t.textContent;
        t.textContent = d.toLocaleString();
      }
    });
  }

  function say(text) {
    var el = document.getElementById('live-state');
    if (el) { el.textContent = text; }
  }

  // Replaces each live region (an element with data-region and an id) with its new version
  // from a fresh copy of the page; forms outside the regions keep what was typed.
  var refreshing = false;
  function refresh() {
    if (refreshing) { return; }
    refreshing = true;
    fetch(window.location.href, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) {
        if (r.redirected || !r.ok) { throw new Error('status ' + r.status); }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, 'text/html');
        document.querySelectorAll('[data-region]').forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh) {
            var node = document.importNode(fresh, true);
            el.replaceWith(node);
            localTimes(node);
          }
        });
        document.body.setAttribute('data-refreshed', String(Date.now()));
        say('Live updates: on, last change ' + new Date().toLocaleTimeString());
      })
      .catch(function () { say('Live updates: could not refresh; reload the page'); })
      .then(function () { refreshing = false; });
  }

  function live() {
    var url = document.body.getAttribute('data-live');
    if (!url || !window.EventSource) { return; }
    var source = new EventSource(url);
    source.addEventListener('change', refresh);
    source.addEventListener('open', function () { say('Live updates: on'); });
    source.addEventListener('error', function () {
      // A refused stream (503 over the cap, or signed out) is closed for good; a dropped one
      // is retried by the browser.
      say(source.readyState === EventSource.CLOSED
        ? 'Live updates: off (reload the page to try again)'
        : 'Live updates: reconnecting…');
    });
  }

  // A form with data-preview: its preview region follows what is typed (one request per
  // pause in typing; an answer overtaken by a newer one is dropped).
  function livePreview(form) {
    var url = form.getAttribute('data-preview');
    var timer = null;
    var latest = 0;
    function run() {
      var mine = ++latest;
      fetch(url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(new FormData(form)).toString()
      })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          if (mine !== latest) { return; }
          var fresh = new DOMParser().parseFromString(html, 'text/html').getElementById('preview');
          var old = document.getElementById('preview');
          if (fresh && old) { old.replaceWith(document.importNode(fresh, true)); }
        })
        .catch(function () {});
    }
    form.addEventListener('input', function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(run, 400);
    });
  }

  // A file input with data-fills reads the chosen file into that text area (the form sends
  // the text; without this script the document is pasted).
  document.addEventListener('change', function (e) {
    var target = e.target.getAttribute && e.target.getAttribute('data-fills');
    if (!target || !e.target.files || !e.target.files[0]) { return; }
    e.target.files[0].text().then(function (text) {
      var area = document.getElementById(target);
      if (area) { area.value = text; }
    });
  });

  document.addEventListener('submit', function (e) {
    var question = e.target.getAttribute('data-confirm');
    if (question && !window.confirm(question)) { e.preventDefault(); }
  });

  document.addEventListener('DOMContentLoaded', function () {
    localTimes(document);
    live();
    document.querySelectorAll('form[data-preview]').forEach(livePreview);
  });
})();
