// The sign-in page: send the name and password, then go back to the page that sent the person here.

import { api, showError } from "./common.js";

const form = document.querySelector("#signin");

// Return the address to go to after signing in: the page that sent the person here, if it is on this server.
function nextPage() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await api("POST", "/session", { name: form.elements.name.value.trim(), password: form.elements.password.value });
    location.assign(nextPage());
  } catch (error) {
    showError(error);
    form.elements.password.select();
  }
});
