// Progressive enhancement only: every page works without this file.
// The fleet's filter narrows the rows shown while typing (the form still filters on the server).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("q");
  const table = document.getElementById("fleet");
  if (!input || !table) return;
  input.addEventListener("input", () => {
    const needle = input.value.trim().toLowerCase();
    for (const row of table.tBodies[0].rows) {
      const text = row.cells[0] ? row.cells[0].textContent.toLowerCase() : "";
      row.hidden = needle !== "" && !text.includes(needle);
    }
  });
});
