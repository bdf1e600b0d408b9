// Starts the connector in the page Salesforce loads: the library first (its UMD build
// sets the global the connector's modules read), then the connector, registered with the
// library so that it answers Salesforce's SETUP_CONNECTOR.

const page = document.body.dataset;

await new Promise((resolve, reject) => {
  const script = document.createElement("script");
  script.src = page.library;
  script.onload = resolve;
  script.onerror = () => reject(new Error(`could not load ${page.library}`));
  document.head.appendChild(script);
});

const { initializeConnector } = await import("./scv-library.js");
const { OpenCtiVoiceConnector } = await import("./connector.js");

// The agent's gateway token comes from the integrator's token service, which knows the
// signed-in user (by its own session cookie).
const token = async () => {
  const response = await fetch(page.tokenUrl, { credentials: "include" });
  if (!response.ok) throw new Error(`token service: ${response.status}`);
  return (await response.text()).trim();
};

initializeConnector(new OpenCtiVoiceConnector({ token }));
