// The sign-in page: the agent's id and password go to POST /api/sign-in; the token it
// answers opens the panel (which takes it out of the address bar at once).

import { requestToken } from "./sign-in-request.js";

const form = document.getElementById("sign-in");
const problem = document.getElementById("sign-in-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  problem.textContent = "";
  try {
    const token = await requestToken(
      "api/sign-in",
      document.getElementById("agent").value,
      document.getElementById("password").value,
    );
    location.replace("./#token=" + encodeURIComponent(token));
  } catch (error) {
    // Shown as text, never as markup.
    problem.textContent = error.message;
  }
});
