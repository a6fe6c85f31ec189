// A small, dependency-free reader for the gateway's /openapi.json, with a "try it" form per operation.
"use strict";

const el = (tag, props, ...children) => {
  const node = Object.assign(document.createElement(tag), props || {});
  node.append(...children);
  return node;
};

function schemaOf(spec, schema) {
  if (!schema) return null;
  if (schema.$ref) return schemaOf(spec, spec.components.schemas[schema.$ref.split("/").pop()]);
  return schema;
}

function example(spec, schema, depth) {
  schema = schemaOf(spec, schema);
  if (!schema || depth > 4) return null;
  if (schema.example !== undefined) return schema.example;
  if (schema.default !== undefined) return schema.default;
  if (schema.anyOf) return example(spec, schema.anyOf[0], depth + 1);
  if (schema.type === "object") {
    const out = {};
    for (const [k, v] of Object.entries(schema.properties || {})) out[k] = example(spec, v, depth + 1);
    return out;
  }
  if (schema.type === "array") return [example(spec, schema.items, depth + 1)];
  if (schema.format === "uuid") return "00000000-0000-0000-0000-000000000000";
  return { integer: schema.minimum || 0, number: 0, boolean: false, string: "" }[schema.type] ?? null;
}

function operation(spec, path, method, op) {
  const inputs = {};
  const body = el("div", { className: "op-body" });
  if (op.description) body.append(el("p", { textContent: op.description }));
  for (const p of op.parameters || []) {
    const input = el("input", { name: p.name, placeholder: (p.schema && (p.schema.format || p.schema.type)) || "" });
    inputs[p.name] = { input, where: p.in };
    body.append(el("label", {}, `${p.name} (${p.in}${p.required ? ", required" : ""}) `, input));
  }
  let textarea = null;
  const content = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
  if (content) {
    textarea = el("textarea", { value: JSON.stringify(example(spec, content.schema, 0), null, 2) });
    body.append(el("label", { textContent: "body (JSON)" }), textarea);
  }
  const codes = Object.entries(op.responses || {}).map(([c, r]) => `${c} ${r.description || ""}`).join(" · ");
  body.append(el("p", { className: "meta", textContent: "responses: " + codes }));
  const out = el("pre", { hidden: true });
  const send = el("button", { textContent: "Send" });
  send.addEventListener("click", async () => {
    let url = path;
    const query = new URLSearchParams();
    for (const [name, { input, where }] of Object.entries(inputs)) {
      if (!input.value) continue;
      if (where === "path") url = url.replace(`{${name}}`, encodeURIComponent(input.value));
      else if (where === "query") query.set(name, input.value);
    }
    if ([...query].length) url += "?" + query;
    const init = { method: method.toUpperCase(), headers: { Accept: "application/json" } };
    if (textarea) { init.body = textarea.value; init.headers["Content-Type"] = "application/json"; }
    const res = await fetch(url, init);
    const text = await res.text();
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON: show as is */ }
    out.hidden = false;
    out.textContent = `${init.method} ${url}\n${res.status} ${res.statusText}\n\n${shown}`;
  });
  body.append(send, out);
  const summary = el("summary", {}, el("span", { className: "method " + method, textContent: method.toUpperCase() }),
                     ` ${path}  `, el("small", { textContent: op.summary || "" }));
  return el("details", {}, summary, body);
}

async function main() {
  const spec = await (await fetch("/openapi.json")).json();
  document.title = spec.info.title;
  document.getElementById("title").textContent = `${spec.info.title} ${spec.info.version}`;
  document.getElementById("description").textContent = spec.info.description || "";
  const byTag = {};
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "other";
      (byTag[tag] = byTag[tag] || []).push(operation(spec, path, method, op));
    }
  }
  const root = document.getElementById("operations");
  for (const [tag, ops] of Object.entries(byTag)) root.append(el("h2", { textContent: tag }), ...ops);
}

main();
