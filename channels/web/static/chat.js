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

  window.WebChat.default({
    selector: "#webchat",
    socketUrl: window.location.origin,
    socketPath: "/socket.io/",
    embedded: true,
    withRules: false,
    title: document.body.getAttribute("data-office"),
    inputTextFieldHint: "Type a message...",
    showFullScreenButton: false,
    params: { storage: "local" }
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
