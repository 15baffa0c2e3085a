// Counts the characters of a note as it is typed.
document.addEventListener("DOMContentLoaded", () => {
  const body = document.querySelector("textarea[name=body]");
  const count = document.getElementById("count");
  if (!body || !count) return;
  const update = () => { count.textContent = `${body.value.length} / ${body.maxLength}`; };
  body.addEventListener("input", update);
  update();
});
