// Card entry through Stripe.js: the card goes from this page straight to Stripe (a SetupIntent);
// the portal then charges it for the amounts it computed itself. Each step asks the server what
// to do next, so a reload or a retry never charges twice.
(function () {
  "use strict";
  var form = document.getElementById("stripe-card-form");
  if (!form) { return; }
  var needsJavaScript = document.getElementById("card-needs-javascript");
  if (needsJavaScript) { needsJavaScript.hidden = true; }
  var data = form.dataset;
  var statusBox = document.getElementById("card-status");
  var button = document.getElementById("card-submit");

  function say(text, isError) {
    statusBox.textContent = text || "";
    statusBox.className = text ? (isError ? "message message-error" : "message") : "";
  }

  if (typeof Stripe === "undefined") {
    form.hidden = false;
    button.disabled = true;
    say(data.messageFailed, true);
    return;
  }

  var stripe = Stripe(data.publishableKey, { locale: document.documentElement.lang || "auto" });
  var card = stripe.elements().create("card", { hidePostalCode: false });
  card.mount("#card-element");
  form.hidden = false;

  // Real Stripe draws its fields in its own labelled frame; a test double may draw plain inputs,
  // which get their accessible names here.
  var labels = {
    number: data.labelNumber, exp_month: data.labelExpMonth, exp_year: data.labelExpYear,
    cvc: data.labelCvc, postal_code: data.labelPostalCode
  };
  Array.prototype.forEach.call(document.querySelectorAll("#card-element input"), function (input) {
    var label = labels[input.getAttribute("placeholder")];
    if (label && !input.hasAttribute("aria-label")) { input.setAttribute("aria-label", label); }
  });

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": data.csrfToken },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().catch(function () { return { status: "error" }; });
    });
  }

  function finishWith(step) {
    if (step.redirect) {
      if (step.message) { say(step.message, false); }
      window.location.assign(step.redirect);
      return;
    }
    say(step.message || data.messageFailed, true);
    button.disabled = false;
  }

  async function authenticateAndFinish(step, payment) {
    // 3-D Secure: the bank asks the card holder, in the browser, for each charge that needs it.
    for (var round = 0; step.status === "requires_action" && round < 3; round++) {
      for (var i = 0; i < step.action_secrets.length; i++) {
        await stripe.confirmCardPayment(step.action_secrets[i]);
      }
      step = await post(data.finishUrl, { payment: payment });
    }
    finishWith(step);
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    button.disabled = true;
    say(data.messageWorking, false);
    try {
      var email = document.getElementById("payer-email");
      var start = await post(data.startUrl, email ? { email: email.value } : {});
      if (start.status === "in_progress") {
        await authenticateAndFinish(await post(data.finishUrl, { payment: start.payment }), start.payment);
        return;
      }
      if (start.status !== "ready") { finishWith(start); return; }
      var result = await stripe.confirmCardSetup(start.client_secret, { payment_method: { card: card } });
      if (result.error) {
        say((result.error && result.error.message) || data.messageFailed, true);
        button.disabled = false;
        return;
      }
      var step = await post(data.chargeUrl, { payment: start.payment });
      await authenticateAndFinish(step, start.payment);
    } catch (error) {
      say(data.messageFailed, true);
      button.disabled = false;
    }
  });
})();
