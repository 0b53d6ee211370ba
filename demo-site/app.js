// A tiny single-page app: routes change with history.pushState and the hash; the tracker
// records each as a page view. The route comes from the URL, so it is written as text, never
// as markup: `app.html?view=<img onerror=…>` shows those characters and runs nothing.
const view = document.getElementById("view");
function render() {
  const route = new URLSearchParams(location.search).get("view") || (location.hash.slice(1) || "overview");
  const title = document.createElement("h2");
  title.textContent = route;
  const action = document.createElement("button");
  action.id = `action-${route}`;
  action.textContent = `Do ${route} thing`;
  view.replaceChildren(title, action);
  document.title = `Account: ${route} · Demo shop`;
}
document.getElementById("tabs").addEventListener("click", (e) => {
  const r = e.target.closest("[data-route]");
  if (!r) return;
  history.pushState({}, "", `app.html?view=${r.dataset.route}`);
  render();
});
addEventListener("popstate", render);
addEventListener("hashchange", render);
render();
