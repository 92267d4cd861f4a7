/* The chat page: mounts the rasa-webchat widget (served by the gateway, /chat/static/) and
   signs out. No inline script: the page's CSP allows scripts from the gateway only. */
(function () {
  "use strict";

  // Where the widget keeps the conversation in the browser (rasa-webchat 1.x).
  var WIDGET_STORAGE_KEY = "chat_session";

  function forgetConversation() {
    try { window.localStorage.removeItem(WIDGET_STORAGE_KEY); } catch (e) { /* storage off */ }
    try { window.sessionStorage.removeItem(WIDGET_STORAGE_KEY); } catch (e) { /* storage off */ }
  }

  // What the widget kept in this tab belongs to the session it was kept for: a conversation of
  // another session (signed out, or the cookie ended) is dropped before the widget shows it.
  (function dropAnotherSessionsConversation() {
    var label = document.body.getAttribute("data-session");
    [window.sessionStorage, window.localStorage].forEach(function (storage) {
      try {
        var kept = JSON.parse(storage.getItem(WIDGET_STORAGE_KEY) || "null");
        if (kept && kept.session_id !== label) { storage.removeItem(WIDGET_STORAGE_KEY); }
      } catch (e) {
        try { storage.removeItem(WIDGET_STORAGE_KEY); } catch (ignored) { /* storage off */ }
      }
    });
  }());

  window.WebChat.default({
    selector: "#webchat",
    socketUrl: window.location.origin,
    socketPath: "/socket.io/",
    embedded: true,
    withRules: false,
    title: document.body.getAttribute("data-office"),
    inputTextFieldHint: "Type a message...",
    showFullScreenButton: false,
    // The conversation kept in the tab only (kept across reloads, gone with the tab): in
    // localStorage it would stay on a shared computer after the browser, and the session
    // cookie, are gone, and the widget would show it to the next person.
    params: { storage: "session" }
  }, document.getElementById("webchat"));

  var form = document.getElementById("sign-out");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var done = function () {
      forgetConversation();
      window.location.reload();
    };
    // The server ends the session and clears its cookie; the widget's copy is cleared here.
    fetch(form.action, { method: "POST", credentials: "same-origin", redirect: "manual" }).then(done, done);
  });
}());
