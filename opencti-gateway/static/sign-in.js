// The sign-in page: the agent's id and password go to POST /api/sign-in; the token it
// answers opens the panel (which takes it out of the address bar at once).

const form = document.getElementById("sign-in");
const problem = document.getElementById("sign-in-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  problem.textContent = "";
  const body = JSON.stringify({
    agent: document.getElementById("agent").value,
    password: document.getElementById("password").value,
  });
  let answer;
  try {
    const response = await fetch("api/sign-in", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    answer = await response.json();
  } catch (e) {
    problem.textContent = "The gateway did not answer: " + e;
    return;
  }
  if (answer.token) {
    location.replace("./#token=" + encodeURIComponent(answer.token));
  } else {
    // Shown as text, never as markup.
    problem.textContent = (answer.error && answer.error.message) || "Sign-in refused";
  }
});
