// Passkeys on the second-factor page: the one script of the sign-in pages. Without it the
// page works with codes; with it, each passkey button asks this server for the request
// options (POST /signin/mfa/passkey), lets the browser sign them (navigator.credentials.get)
// and posts the assertion to /signin/mfa. No inline script: the CSP allows this file only.
(function () {
  "use strict";
  var box = document.getElementById("passkeys");
  if (!box || !window.PublicKeyCredential || !navigator.credentials) { return; }
  var form = document.getElementById("passkey-form");
  var status = document.getElementById("passkey-status");
  function toBuffer(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var binary = atob(base64), bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }
  function toText(buffer) {
    var bytes = new Uint8Array(buffer), binary = "";
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  async function signIn(factorId) {
    status.textContent = "";
    var body = new URLSearchParams({ csrf_token: form.elements.csrf_token.value, factor_id: factorId });
    var answer = await fetch(form.dataset.options, { method: "POST", body: body, credentials: "same-origin" });
    var data = await answer.json();
    if (!answer.ok) { throw new Error(data.error || "The passkey cannot be used now."); }
    var options = data.options;
    options.challenge = toBuffer(options.challenge);
    (options.allowCredentials || []).forEach(function (c) { c.id = toBuffer(c.id); });
    var credential = await navigator.credentials.get({ publicKey: options });
    var response = credential.response;
    form.elements.factor_id.value = factorId;
    form.elements.credential.value = JSON.stringify({
      id: credential.id, rawId: toText(credential.rawId), type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: {
        clientDataJSON: toText(response.clientDataJSON), authenticatorData: toText(response.authenticatorData),
        signature: toText(response.signature), userHandle: response.userHandle ? toText(response.userHandle) : null
      }
    });
    form.submit();
  }
  box.hidden = false;
  box.querySelectorAll("button[data-passkey]").forEach(function (button) {
    button.addEventListener("click", function () {
      signIn(button.dataset.passkey).catch(function (error) {
        status.textContent = (error && error.message && error.name === "Error") ? error.message
          : "The passkey did not sign in. Try again, or enter a code.";
      });
    });
  });
})();
