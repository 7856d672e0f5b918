// The search view's controls. Model text is only ever read (textContent, data-*), never
// written back as HTML, so nothing a model says can become markup here.
(function () {
  "use strict";
  const tree = document.getElementById("tree");
  const nodes = Array.from(tree.querySelectorAll("li.node"));
  const filter = document.getElementById("filter");
  const onlyVisited = document.getElementById("only-visited");
  const onlySolutions = document.getElementById("only-solutions");
  const count = document.getElementById("match-count");
  let activeAnswer = null;

  function details(li) { return li.firstElementChild; }
  function ownText(li) {
    // The node's own summary and body, not its descendants'.
    const d = details(li);
    let text = li.dataset.id + " " + li.dataset.answer;
    for (const child of d.children) {
      if (child.tagName !== "UL") text += " " + child.textContent;
    }
    return text.toLowerCase();
  }
  const texts = new Map(nodes.map((li) => [li, ownText(li)]));

  function ancestors(li) {
    const out = [];
    let p = li.parentElement.closest("li.node");
    while (p) { out.push(p); p = p.parentElement.closest("li.node"); }
    return out;
  }

  function apply() {
    const q = filter.value.trim().toLowerCase();
    const filtering = q !== "" || activeAnswer !== null;
    const keep = new Set();
    let hits = 0;
    for (const li of nodes) {
      let hit = false;
      if (filtering) {
        hit = (q === "" || texts.get(li).includes(q)) &&
              (activeAnswer === null || li.dataset.answer === activeAnswer);
      }
      li.classList.toggle("hit", hit);
      if (hit) {
        hits += 1;
        keep.add(li);
        for (const a of ancestors(li)) keep.add(a);
      }
    }
    const solutionPaths = new Set();
    if (onlySolutions.checked) {
      for (const li of nodes) {
        if (li.classList.contains("solution")) {
          solutionPaths.add(li);
          for (const a of ancestors(li)) solutionPaths.add(a);
        }
      }
    }
    for (const li of nodes) {
      let hidden = false;
      if (filtering && !keep.has(li)) hidden = true;
      if (onlyVisited.checked && li.dataset.visits === "0" && !li.classList.contains("on-path")) hidden = true;
      if (onlySolutions.checked && !solutionPaths.has(li)) hidden = true;
      li.classList.toggle("hidden", hidden);
      if (filtering && keep.has(li) && !li.classList.contains("hit")) details(li).open = true;
    }
    count.textContent = filtering ? hits + " matching node" + (hits === 1 ? "" : "s") : "";
  }

  function reveal(id) {
    const li = document.getElementById("n-" + id);
    if (!li) return;
    for (const a of ancestors(li)) { a.classList.remove("hidden"); details(a).open = true; }
    li.classList.remove("hidden");
    details(li).open = true;
    li.scrollIntoView({ block: "center" });
    const s = details(li).firstElementChild;
    s.focus({ preventScroll: true });
  }

  filter.addEventListener("input", apply);
  onlyVisited.addEventListener("change", apply);
  onlySolutions.addEventListener("change", apply);
  document.getElementById("expand-all").addEventListener("click", () => {
    for (const li of nodes) details(li).open = true;
  });
  document.getElementById("collapse-all").addEventListener("click", () => {
    for (const li of nodes) details(li).open = li === nodes[0];
  });
  document.getElementById("show-chosen").addEventListener("click", () => {
    const chosen = tree.querySelector("li.node.chosen");
    if (chosen) reveal(chosen.dataset.id);
  });
  document.getElementById("all-text").addEventListener("change", (event) => {
    document.body.classList.toggle("all-text", event.target.checked);
  });
  for (const snippet of tree.querySelectorAll(".snippet")) {
    // A click on the text shows the node's full text and checks instead of folding it.
    snippet.addEventListener("click", (event) => {
      event.preventDefault();
      snippet.closest("li.node").classList.toggle("show-text");
    });
  }
  for (const chip of document.querySelectorAll("#answers .chip")) {
    chip.addEventListener("click", () => {
      const same = activeAnswer === chip.dataset.answer;
      activeAnswer = same ? null : chip.dataset.answer;
      for (const c of document.querySelectorAll("#answers .chip")) {
        c.classList.toggle("active", !same && c === chip);
      }
      apply();
    });
  }
  for (const link of document.querySelectorAll("a.goto")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      reveal(link.dataset.node);
    });
  }
})();
