// vacina-d1 pages: the TERMO DE USO modal before a first download, and small helpers.
// No inline scripts (the Content-Security-Policy forbids them); everything works without
// this file too (the download link then goes through the terms page).
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]');
  var scrim = document.getElementById("termos-scrim");
  var modal = document.getElementById("termos-modal");
  var form = document.getElementById("termos-form");
  var opener = null;
  var pendingHref = null;

  function focusables() {
    return Array.prototype.filter.call(
      modal.querySelectorAll('a[href], button, input:not([type="hidden"]), [tabindex="0"]'),
      function (el) { return !el.disabled; }
    );
  }

  function openModal(link) {
    opener = link;
    pendingHref = link.getAttribute("href");
    scrim.hidden = false;
    scrim.classList.add("active");
    document.body.classList.add("portal-modal-open");
    modal.focus();
  }

  function closeModal() {
    scrim.hidden = true;
    scrim.classList.remove("active");
    document.body.classList.remove("portal-modal-open");
    if (opener) { opener.focus(); }
  }

  if (scrim && modal && form) {
    document.addEventListener("click", function (event) {
      var link = event.target.closest("a[data-terms-required]");
      if (!link) { return; }
      event.preventDefault();
      openModal(link);
    });
    modal.querySelector('[data-dismiss="termos"]').addEventListener("click", closeModal);
    scrim.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { closeModal(); return; }
      if (event.key !== "Tab") { return; }
      var items = focusables();
      if (!items.length) { return; }
      var first = items[0], last = items[items.length - 1];
      if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
      else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var checkbox = document.getElementById("termos-aceito");
      if (!checkbox.checked) { checkbox.focus(); checkbox.reportValidity(); return; }
      var body = new URLSearchParams(new FormData(form));
      fetch(form.action, {
        method: "POST",
        headers: { "Accept": "application/json", "X-CSRF-Token": csrf ? csrf.content : "" },
        body: body,
        credentials: "same-origin"
      }).then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        // Accepted: no more modal on this page for this operation; start the download.
        document.querySelectorAll("a[data-terms-required]").forEach(function (a) { a.removeAttribute("data-terms-required"); });
        closeModal();
        if (pendingHref) { window.location.href = pendingHref; }
      }).catch(function () {
        form.submit();  // the server answers with its own page (error or download)
      });
    });
  }

  // "Exibir: N" applies as soon as it changes.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
    var button = select.form.querySelector(".portal-noscript-only");
    if (button) { button.hidden = true; }
  });
})();
