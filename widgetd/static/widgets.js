// widgetd's widget page: one widget per served model, built from the task contracts at /widgets.
"use strict";

const state = { apiKey: sessionStorage.getItem("widgetd-api-key") || "" };

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function authHeaders() {
  return state.apiKey ? { Authorization: `Bearer ${state.apiKey}` } : {};
}

// ---- inputs, one kind per task -------------------------------------------------------------

const TEXT_PLACEHOLDERS = {
  "fill-mask": "Paris is the [MASK] of France.",
  "token-classification": "My name is Sarah and I live in London",
  "text-generation": "Once upon a time",
  "text-to-speech": "Hello from widgetd!",
  "text-to-image": "An astronaut riding a horse on the moon",
};

function textInput(task) {
  const text = el("textarea", { name: "text", placeholder: TEXT_PLACEHOLDERS[task] || "Type a text…" });
  return {
    fields: [el("label", { class: "field" }, "Text"), text],
    prefill: (example) => { if (example.text) text.value = example.text; },
    read: () => ({ inputs: text.value }),
  };
}

function questionAnsweringInput() {
  const question = el("input", { type: "text", name: "question", placeholder: "Where do I live?" });
  const context = el("textarea", { name: "context", placeholder: "My name is Sarah and I live in London" });
  return {
    fields: [el("label", { class: "field" }, "Question"), question, el("label", { class: "field" }, "Context"), context],
    prefill: (example) => { question.value = example.text || ""; context.value = example.context || ""; },
    read: () => ({ inputs: { question: question.value, context: context.value } }),
  };
}

function similarityInput() {
  const source = el("input", { type: "text", name: "source_sentence", placeholder: "A man is eating food." });
  const sentences = el("textarea", { name: "sentences", placeholder: "One sentence per line" });
  return {
    fields: [el("label", { class: "field" }, "Source sentence"), source, el("label", { class: "field" }, "Sentences to compare, one per line"), sentences],
    prefill: (example) => {
      source.value = example.source_sentence || "";
      sentences.value = (example.sentences || []).join("\n");
    },
    read: () => ({ inputs: { source_sentence: source.value, sentences: sentences.value.split("\n").filter((s) => s.trim()) } }),
  };
}

function zeroShotInput() {
  const text = el("textarea", { name: "text", placeholder: "I have a problem with my iphone that needs to be resolved asap!" });
  const labels = el("input", { type: "text", name: "candidate_labels", placeholder: "urgent, not urgent, phone, tablet" });
  return {
    fields: [el("label", { class: "field" }, "Text"), text, el("label", { class: "field" }, "Candidate labels, comma separated"), labels],
    prefill: (example) => {
      text.value = example.text || "";
      labels.value = Array.isArray(example.candidate_labels) ? example.candidate_labels.join(", ") : example.candidate_labels || "";
    },
    read: () => ({ inputs: text.value, parameters: { candidate_labels: labels.value.split(",").map((s) => s.trim()).filter(Boolean) } }),
  };
}

function zeroShotMediaInput(kind) {
  const media = mediaInput(kind);
  const labels = el("input", { type: "text", name: "candidate_labels", placeholder: kind === "audio" ? "a dog barking, music, rain" : "cat, dog, aeroplane" });
  return {
    fields: [...media.fields, el("label", { class: "field" }, "Candidate labels, comma separated"), labels],
    prefill: (example) => {
      labels.value = Array.isArray(example.candidate_labels) ? example.candidate_labels.join(", ") : example.candidate_labels || "";
    },
    read: () => ({ ...media.read(), parameters: { candidate_labels: labels.value.split(",").map((s) => s.trim()).filter(Boolean) } }),
  };
}

function imageQuestionInput(task) {
  // visual and document question answering: an image and a question about it; a document's words may come
  // with their boxes, for a server without OCR.
  const image = mediaInput("image");
  const question = el("input", { type: "text", name: "question", placeholder: "What is in the picture?" });
  const fields = [...image.fields, el("label", { class: "field" }, "Question"), question];
  const words = el("textarea", { name: "word_boxes", rows: 3, placeholder: '[["Total:", [60, 160, 150, 190]], ["$99.50", [160, 160, 260, 190]]]' });
  if (task === "document-question-answering") fields.push(el("label", { class: "field" }, "Words and their boxes, in thousandths of the page (JSON; empty: the server reads them)"), words);
  return {
    fields,
    prefill: (example) => { question.value = example.text || ""; },
    read: () => {
      const read = { ...image.read(), question: question.value };
      if (words.value.trim()) read.parameters = { word_boxes: JSON.parse(words.value) };
      return read;
    },
  };
}

function tableEditor(placeholder) {
  // Rows of cells, the first row naming the columns: tab-separated (pasted from a spreadsheet) or comma-separated.
  const area = el("textarea", { name: "table", rows: 5, placeholder });
  const rows = () => area.value.split("\n").filter((line) => line.trim())
    .map((line) => line.split(line.includes("\t") ? "\t" : ",").map((cell) => cell.trim()));
  return {
    area,
    label: el("label", { class: "field" }, "Table: a header row, then one row per line, cells separated by commas or tabs"),
    fill: (table) => {
      const columns = Object.keys(table || {});
      if (!columns.length) return;
      const body = table[columns[0]].map((_, row) => columns.map((column) => table[column][row]).join(", "));
      area.value = [columns.join(", "), ...body].join("\n");
    },
    columns: () => {
      const [header = [], ...body] = rows();
      return Object.fromEntries(header.map((name, column) => [name, body.map((row) => row[column] ?? "")]));
    },
  };
}

function tableInput() {
  const question = el("input", { type: "text", name: "question", placeholder: "How many stars does the transformers repository have?" });
  const table = tableEditor("Repository, Stars, Contributors\nTransformers, 36542, 651\nDatasets, 4512, 77");
  return {
    fields: [el("label", { class: "field" }, "Question"), question, table.label, table.area],
    prefill: (example) => {
      question.value = example.text || example.query || "";
      table.fill(example.table);
    },
    read: () => ({ inputs: { question: question.value, table: table.columns() } }),
  };
}

function tabularInput() {
  // The cells go as text, as the Python client sends them; the server reads numbers where the model wants them.
  const table = tableEditor("Species, Length, Height, Width\nBream, 23.2, 11.5, 4.02\nPike, 40.1, 7.0, 4.2");
  return {
    fields: [table.label, table.area],
    prefill: (example) => table.fill(example.table),
    read: () => ({ inputs: { data: table.columns() } }),
  };
}

function predictedTable(table, answer) {
  // Each row as sent, its prediction beside it.
  const columns = Object.keys(table);
  const shown = (value) => (typeof value === "number" && !Number.isInteger(value) ? value.toFixed(4) : String(value));
  const rows = answer.map((value, row) => el("tr", {}, columns.map((name) => el("td", {}, table[name][row])), el("td", { class: "hit prediction" }, shown(value))));
  return el("table", { class: "answered" }, el("thead", {}, el("tr", {}, columns.map((name) => el("th", {}, name)), el("th", {}, "prediction"))), el("tbody", {}, rows));
}

function mediaInput(kind) {
  const accept = kind === "audio" ? "audio/*" : "image/*";
  const file = el("input", { type: "file", name: "file", accept });
  const preview = el("div");
  const drop = el("div", { class: "drop" }, `Drop ${kind === "audio" ? "an audio file" : "an image"} here, or `, file, preview);
  let blob = null;
  const use = (chosen) => {
    blob = chosen;
    preview.replaceChildren();
    const url = URL.createObjectURL(chosen);
    preview.append(kind === "audio" ? el("audio", { controls: true, src: url }) : el("img", { src: url, alt: "input image" }));
  };
  file.addEventListener("change", () => file.files[0] && use(file.files[0]));
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files[0]) use(event.dataTransfer.files[0]);
  });
  const fields = [el("label", { class: "field" }, kind === "audio" ? "Audio" : "Image"), drop];
  if (kind === "audio") fields.push(recorder(use));
  return { fields, prefill: () => {}, read: () => ({ media: blob }), preview: () => blob };
}

// Records from the microphone and sends WAV: every server decodes it, unlike the browser's webm.
function recorder(use) {
  const button = el("button", { type: "button", class: "secondary" }, "● Record");
  let recording = null;
  button.addEventListener("click", async () => {
    if (recording) { recording.stop(); return; }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const chunks = [];
      recording = new MediaRecorder(stream);
      recording.ondataavailable = (event) => chunks.push(event.data);
      recording.onstop = async () => {
        stream.getTracks().forEach((track) => track.stop());
        recording = null;
        button.textContent = "● Record";
        use(await toWav(new Blob(chunks)));
      };
      recording.start();
      button.textContent = "■ Stop";
    } catch (error) {
      button.textContent = "Microphone unavailable";
    }
  });
  return button;
}

async function toWav(blob) {
  const context = new AudioContext();
  const audio = await context.decodeAudioData(await blob.arrayBuffer());
  const samples = audio.getChannelData(0);
  const buffer = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (offset, value) => [...value].forEach((c, i) => buffer.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF"); buffer.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVEfmt ");
  buffer.setUint32(16, 16, true); buffer.setUint16(20, 1, true); buffer.setUint16(22, 1, true);
  buffer.setUint32(24, audio.sampleRate, true); buffer.setUint32(28, audio.sampleRate * 2, true);
  buffer.setUint16(32, 2, true); buffer.setUint16(34, 16, true); text(36, "data");
  buffer.setUint32(40, samples.length * 2, true);
  samples.forEach((s, i) => buffer.setInt16(44 + i * 2, Math.max(-1, Math.min(1, s)) * 0x7fff, true));
  return new Blob([buffer], { type: "audio/wav" });
}

function jsonInput() {
  // A task with no contract (a custom handler's): the request body as JSON, checked before it is sent.
  const editor = el("textarea", { name: "json", class: "json-editor", spellcheck: "false", rows: 8 }, '{\n  "inputs": "Hello!"\n}');
  return {
    fields: [el("label", { class: "field" }, "Request body (JSON)"), editor],
    prefill: (example) => { if (example.text) editor.value = JSON.stringify({ inputs: example.text }, null, 2); },
    read: () => {
      try {
        return { json: JSON.parse(editor.value) };
      } catch (error) {
        throw new Error(`the request body is not valid JSON: ${error.message}`);
      }
    },
  };
}

function inputFor(task, meta) {
  if (meta.raw_body === "any") return jsonInput();
  if (task === "zero-shot-image-classification") return zeroShotMediaInput("image");
  if (task === "zero-shot-audio-classification") return zeroShotMediaInput("audio");
  if (task === "visual-question-answering" || task === "document-question-answering") return imageQuestionInput(task);
  if (meta.raw_body === "audio" || meta.raw_body === "image") return mediaInput(meta.raw_body);
  if (task === "question-answering") return questionAnsweringInput();
  if (task === "sentence-similarity") return similarityInput();
  if (task === "zero-shot-classification") return zeroShotInput();
  if (task === "table-question-answering") return tableInput();
  if (task === "tabular-classification" || task === "tabular-regression") return tabularInput();
  return textInput(task);
}

// ---- parameters, from the request schema ---------------------------------------------------

function resolve(schema, node) {
  if (node && node.$ref) return resolve(schema, schema.$defs[node.$ref.split("/").pop()]);
  if (node && node.anyOf) return resolve(schema, node.anyOf.find((option) => option.type !== "null") || node.anyOf[0]);
  return node || {};
}

// Fields the Python client sends beside what the form asks for (the question and image again, the model it
// was called with): no option to offer.
const NOT_OPTIONS = ["question", "image", "model"];

// Options with a scalar or list-of-strings type: under "parameters", or at the top level (feature-extraction).
function parameterSpecs(schema, taskInput) {
  const root = resolve(schema, schema);
  const specs = [];
  const add = (properties, where) => {
    for (const [name, property] of Object.entries(properties || {})) {
      const resolved = resolve(schema, property);
      const type = resolved.enum ? "enum" : resolved.type;
      if (["boolean", "integer", "number", "string", "enum"].includes(type) || (type === "array" && resolve(schema, resolved.items).type === "string")) {
        specs.push({ name, where, type, enum: resolved.enum, default: property.default ?? resolved.default });
      }
    }
  };
  for (const [name, property] of Object.entries(root.properties || {})) {
    if (name === "inputs") continue;
    if (name === "parameters") add(resolve(schema, property).properties, "parameters");
    else add({ [name]: property }, "top");
  }
  // The zero-shot inputs ask for the labels beside the text or image.
  return specs.filter((spec) => !(taskInput.startsWith("zero-shot") && spec.name === "candidate_labels") && !NOT_OPTIONS.includes(spec.name));
}

function parameterPanel(specs) {
  const controls = specs.map((spec) => {
    let control;
    if (spec.type === "boolean") control = el("input", { type: "checkbox", name: spec.name, checked: spec.default === true });
    else if (spec.type === "enum") control = el("select", { name: spec.name }, el("option", { value: "" }, "(default)"), spec.enum.map((v) => el("option", { value: v, selected: v === spec.default }, v)));
    else control = el("input", { type: spec.type === "integer" || spec.type === "number" ? "number" : "text", name: spec.name, step: spec.type === "number" ? "any" : undefined, value: spec.default ?? "", placeholder: spec.type === "array" ? "comma separated" : "" });
    return { spec, control };
  });
  const panel = el("details", { class: "parameters" }, el("summary", {}, "Parameters"),
    controls.map(({ spec, control }) => el("div", { class: "param" }, el("label", {}, spec.name), control)));
  const read = () => {
    const values = { parameters: {}, top: {} };
    for (const { spec, control } of controls) {
      let value;
      if (spec.type === "boolean") { if (control.checked === (spec.default === true)) continue; value = control.checked; }
      else if (control.value === "" || control.value === String(spec.default ?? "")) continue;
      else if (spec.type === "integer") value = parseInt(control.value, 10);
      else if (spec.type === "number") value = parseFloat(control.value);
      else if (spec.type === "array") value = control.value.split(",").map((s) => s.trim()).filter(Boolean);
      else value = control.value;
      values[spec.where][spec.name] = value;
    }
    return values;
  };
  return { panel: controls.length ? panel : null, read };
}

// ---- requests ------------------------------------------------------------------------------

async function base64(blob) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

async function send(url, read, readParameters, accept) {
  const input = read();
  const options = readParameters();
  const headers = { ...authHeaders(), ...(accept ? { Accept: accept } : {}) };
  let body;
  if ("json" in input) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(input.json);
  } else if ("media" in input) {
    if (!input.media) throw new Error("choose a file first");
    const parameters = { ...(input.parameters || {}), ...options.parameters };
    if ("question" in input) {
      headers["Content-Type"] = "application/json";
      const request = { inputs: { image: await base64(input.media), question: input.question } };
      if (Object.keys(parameters).length) request.parameters = parameters;
      body = JSON.stringify(request);
    } else if (Object.keys(parameters).length) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify({ inputs: await base64(input.media), parameters });
    } else {
      body = input.media;
    }
  } else {
    headers["Content-Type"] = "application/json";
    const parameters = { ...(input.parameters || {}), ...options.parameters };
    const request = { ...input, ...options.top };
    delete request.parameters;
    // Only tasks with a parameters object get one: feature-extraction's options are top level.
    if (Object.keys(parameters).length) request.parameters = parameters;
    body = JSON.stringify(request);
  }
  return fetch(url, { method: "POST", headers, body });
}

// ---- outputs -------------------------------------------------------------------------------

function bars(entries) {
  return el("div", { class: "bars" }, entries.map(({ label, score }) =>
    el("div", { class: "bar-row" }, el("span", { class: "label" }, label),
      el("div", { class: "bar" }, el("span", { style: `width:${Math.max(0, Math.min(1, score)) * 100}%` })),
      el("span", { class: "score" }, score.toFixed(3)))));
}

const BOX_COLOURS = ["#e11d48", "#2563eb", "#16a34a", "#d97706", "#7c3aed", "#0891b2"];

function detections(media, objects) {
  // Boxes in percent of the image, so that they follow it at any displayed size.
  const frame = el("div", { class: "detections" });
  const image = el("img", { src: URL.createObjectURL(media), alt: "image with detected objects" });
  const labels = [...new Set(objects.map((o) => o.label))];
  image.addEventListener("load", () => {
    const { naturalWidth: width, naturalHeight: height } = image;
    frame.append(...objects.map((o) => {
      const colour = BOX_COLOURS[labels.indexOf(o.label) % BOX_COLOURS.length];
      const box = o.box;
      return el("div", {
        class: "box", title: `${o.label} ${o.score.toFixed(3)}`,
        style: `left:${100 * box.xmin / width}%;top:${100 * box.ymin / height}%;width:${100 * (box.xmax - box.xmin) / width}%;height:${100 * (box.ymax - box.ymin) / height}%;border-color:${colour}`,
      }, el("span", { class: "box-label", style: `background:${colour}` }, `${o.label} ${o.score.toFixed(2)}`));
    }));
  });
  frame.append(image);
  return el("div", {}, frame, objects.length ? bars(objects.map((o) => ({ label: o.label, score: o.score }))) : el("p", { class: "muted" }, "No object above the threshold."));
}

function segmentation(media, segments) {
  // Each mask painted in its colour onto one canvas over the image, with a legend naming the colours.
  const frame = el("div", { class: "segments" });
  const image = el("img", { src: URL.createObjectURL(media), alt: "image with segments" });
  const canvas = el("canvas", { class: "overlay" });
  const colourOf = (index) => BOX_COLOURS[index % BOX_COLOURS.length];
  image.addEventListener("load", async () => {
    const { naturalWidth: width, naturalHeight: height } = image;
    Object.assign(canvas, { width, height });
    const context = canvas.getContext("2d");
    const painted = context.createImageData(width, height);
    const scratch = el("canvas", { width, height }).getContext("2d", { willReadFrequently: true });
    for (const [index, segment] of segments.entries()) {
      const mask = new Image();
      mask.src = `data:image/png;base64,${segment.mask}`;
      await mask.decode();
      scratch.clearRect(0, 0, width, height);
      scratch.drawImage(mask, 0, 0);
      const inside = scratch.getImageData(0, 0, width, height).data;
      const [red, green, blue] = colourOf(index).match(/\w\w/g).map((hex) => parseInt(hex, 16));
      for (let at = 0; at < inside.length; at += 4) {
        if (inside[at] > 127) painted.data.set([red, green, blue, 150], at);
      }
    }
    context.putImageData(painted, 0, 0);
    frame.dataset.painted = "true";
  });
  frame.append(image, canvas);
  const legend = el("ul", { class: "legend" }, segments.map((segment, index) =>
    el("li", {}, el("span", { class: "swatch", style: `background:${colourOf(index)}` }),
      el("span", { class: "label" }, segment.label), segment.score === undefined ? "" : ` ${segment.score.toFixed(3)}`)));
  return el("div", {}, frame, segments.length ? legend : el("p", { class: "muted" }, "No segment above the threshold."));
}

function documentAnswer(media, best, wordBoxes) {
  // The answer, and over the document the box around its words (where the request sent their boxes).
  const text = el("p", {}, "Answer: ", el("span", { class: "answer-text" }, best ? best.answer : "(none)"), best ? ` (${best.score.toFixed(3)})` : "");
  const frame = el("div", { class: "detections" }, el("img", { src: URL.createObjectURL(media), alt: "document" }));
  const spanned = best && wordBoxes ? wordBoxes.slice(best.start, best.end + 1).map(([, box]) => box) : [];
  if (spanned.length) {
    const [x0, y0] = [Math.min(...spanned.map((b) => b[0])), Math.min(...spanned.map((b) => b[1]))];
    const [x1, y1] = [Math.max(...spanned.map((b) => b[2])), Math.max(...spanned.map((b) => b[3]))];
    frame.append(el("div", { class: "box answer-box", style: `left:${x0 / 10}%;top:${y0 / 10}%;width:${(x1 - x0) / 10}%;height:${(y1 - y0) / 10}%;border-color:${BOX_COLOURS[0]}` }));
  }
  return el("div", {}, text, frame);
}

function answeredTable(table, answer) {
  // The table as asked, the answer's cells highlighted.
  const columns = Object.keys(table);
  const hits = new Set(answer.coordinates.map(([row, column]) => `${row},${column}`));
  const rows = (table[columns[0]] || []).map((_, row) => el("tr", {}, columns.map((name, column) =>
    el("td", hits.has(`${row},${column}`) ? { class: "hit" } : {}, table[name][row]))));
  const aggregated = answer.aggregator && answer.aggregator !== "NONE";
  return el("div", {},
    el("p", {}, "Answer: ", el("span", { class: "answer-text" }, answer.answer), aggregated ? el("span", { class: "muted" }, ` (${answer.aggregator} of ${answer.cells.length} cells)`) : ""),
    el("table", { class: "answered" }, el("thead", {}, el("tr", {}, columns.map((name) => el("th", {}, name)))), el("tbody", {}, rows)));
}

function highlighted(text, spans) {
  const parts = [];
  let at = 0;
  for (const span of [...spans].sort((a, b) => a.start - b.start)) {
    if (span.start < at) continue;
    parts.push(text.slice(at, span.start), el("mark", { title: `${span.label} ${span.score.toFixed(3)}` }, text.slice(span.start, span.end), el("span", { class: "label" }, span.label)));
    at = span.end;
  }
  parts.push(text.slice(at));
  return el("p", { class: "highlighted" }, parts);
}

function audioPlayer(src, label, type) {
  const extension = (type || "audio/flac").split("/")[1].replace("mpeg", "mp3");
  return el("div", { class: "source" }, el("div", {}, label), el("audio", { controls: true, src }),
    el("a", { href: src, download: `${label}.${extension}` }, "Download"));
}

async function freeAnswer(response) {
  // Whatever a custom handler answered: JSON, an image, or bytes to download.
  const type = (response.headers.get("content-type") || "").split(";")[0];
  if (type === "application/json") return el("pre", { class: "json-answer" }, JSON.stringify(await response.json(), null, 2));
  const made = URL.createObjectURL(await response.blob());
  if (type.startsWith("image/")) return el("figure", {}, el("img", { class: "made", src: made, alt: "image answered" }));
  if (type.startsWith("audio/")) return audioPlayer(made, "answer", type);
  return el("a", { href: made, download: "answer.bin" }, `Download the answer (${type})`);
}

// A long job's steps (Accept: text/event-stream): a progress bar and the previews, then the answer.
async function followProgress(response, output, task, request) {
  const bar = el("progress", { class: "job", max: 1, value: 0 });
  const status = el("span", { class: "muted step" }, "starting…");
  const preview = el("img", { class: "preview", alt: "the image so far", hidden: true });
  output.replaceChildren(el("div", { class: "progress-row" }, bar, status), preview);
  let elapsed = 0;
  let steps = 0;
  for await (const data of serverSentEvents(response)) {
    if (data === "[DONE]") break;
    const event = JSON.parse(data);
    if (event.type === "progress") {
      bar.max = event.total;
      bar.value = event.step;
      elapsed = event.elapsed;
      steps = event.total;
      status.textContent = `step ${event.step} of ${event.total}, ${event.elapsed.toFixed(1)} s`;
      if (event.preview) { preview.src = `data:image/png;base64,${event.preview}`; preview.hidden = false; }
    } else if (event.type === "error") {
      throw new Error(`${event.status}: ${event.error}`);
    } else if (event.type === "result") {
      const body = event.blob !== undefined ? Uint8Array.from(atob(event.blob), (c) => c.charCodeAt(0)) : JSON.stringify(event.answer);
      const answer = new Response(body, { headers: { "content-type": event["content-type"] } });
      return { shown: await render(task, answer, request), seconds: elapsed, steps };
    }
  }
  throw new Error("the event stream ended without an answer");
}

async function render(task, response, request) {
  if (task === "text-to-speech") {
    const blob = await response.blob();
    return audioPlayer(URL.createObjectURL(blob), "speech", blob.type);
  }
  if (task === "text-to-image") {
    const made = URL.createObjectURL(await response.blob());
    return el("figure", {}, el("img", { class: "made", src: made, alt: request.inputs }), el("a", { href: made, download: "image.png" }, "Download"));
  }
  if (task === "image-to-image") {
    const made = URL.createObjectURL(await response.blob());
    return el("div", { class: "side-by-side" }, el("img", { src: URL.createObjectURL(request.media), alt: "image sent" }),
      el("figure", {}, el("img", { class: "made", src: made, alt: "image made" }), el("a", { href: made, download: "image.png" }, "Download")));
  }
  const answer = await response.json();
  switch (task) {
    case "text-classification": case "zero-shot-classification": case "image-classification": case "audio-classification":
    case "zero-shot-image-classification": case "zero-shot-audio-classification": {
      const labels = Array.isArray(answer[0]) ? answer[0] : answer;
      const image = request.media && task.endsWith("image-classification") ? el("img", { src: URL.createObjectURL(request.media), alt: "classified image", style: "max-width:100%;max-height:160px" }) : null;
      return el("div", {}, image, bars(labels));
    }
    case "object-detection":
      return detections(request.media, answer);
    case "image-segmentation":
      return segmentation(request.media, answer);
    case "visual-question-answering":
      return el("div", {}, el("img", { src: URL.createObjectURL(request.media), alt: "image asked about", style: "max-width:100%;max-height:160px" }),
        bars(answer.map((a) => ({ label: a.answer, score: a.score }))));
    case "document-question-answering":
      return documentAnswer(request.media, answer[0], request.parameters?.word_boxes);
    case "depth-estimation":
      return el("div", { class: "side-by-side" }, el("img", { src: URL.createObjectURL(request.media), alt: "image" }),
        el("img", { class: "depth", src: `data:image/png;base64,${answer.depth}`, alt: "its depth, brighter where nearer or farther as the model scales it" }));
    case "image-to-text": {
      const caption = (Array.isArray(answer) ? answer[0] : answer).generated_text;
      return el("figure", { class: "captioned" }, el("img", { src: URL.createObjectURL(request.media), alt: "captioned image" }), el("figcaption", { class: "generated" }, caption));
    }
    case "table-question-answering":
      return answeredTable(request.inputs.table, Array.isArray(answer) ? answer[0] : answer);
    case "tabular-classification": case "tabular-regression":
      return predictedTable(request.inputs.data, answer);
    case "question-answering": {
      const answers = Array.isArray(answer) ? answer : [answer];
      const best = answers[0];
      return el("div", {}, el("p", {}, "Answer: ", el("span", { class: "answer-text" }, best.answer), ` (${best.score.toFixed(3)})`),
        highlighted(request.inputs.context, answers.slice(0, 1).map((a) => ({ ...a, label: "answer" }))));
    }
    case "token-classification":
      return highlighted(request.inputs, answer.map((e) => ({ ...e, label: e.entity_group })));
    case "sentence-similarity": {
      const ranked = request.inputs.sentences.map((label, i) => ({ label, score: answer[i] })).sort((a, b) => b.score - a.score);
      return bars(ranked);
    }
    case "fill-mask":
      return bars(answer.map((c) => ({ label: c.sequence, score: c.score })));
    case "feature-extraction": {
      const vectors = Array.isArray(answer[0]) ? answer : [answer];
      return el("div", {}, vectors.map((v, i) => el("p", { class: "vector" }, `#${i}: ${v.length} dimensions [${v.slice(0, 6).map((x) => x.toFixed(4)).join(", ")}, …]`)));
    }
    case "automatic-speech-recognition":
      return el("div", {}, el("p", { class: "transcript" }, answer.text),
        (answer.chunks || []).map((c) => el("p", { class: "muted" }, `[${c.timestamp[0].toFixed(2)}–${c.timestamp[1].toFixed(2)} s] ${c.text}`)));
    case "audio-to-audio":
      return el("div", { class: "sources" }, answer.map((s) => audioPlayer(`data:${s["content-type"]};base64,${s.blob}`, s.label, s["content-type"])));
    default: {
      const first = Array.isArray(answer) ? answer[0] : answer;
      const text = first && (first.summary_text ?? first.translation_text ?? first.generated_text);
      return el("p", { class: "generated" }, text ?? JSON.stringify(answer));
    }
  }
}

// ---- widgets -------------------------------------------------------------------------------

// ---- chat: a conversation streamed from /v1/chat/completions ---------------------------------

const CHAT = "chat";

async function* serverSentEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += value;
    let end;
    while ((end = buffered.indexOf("\n\n")) >= 0) {
      const event = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      for (const line of event.split("\n")) if (line.startsWith("data: ")) yield line.slice(6);
    }
  }
}

function errorText(status, problem) {
  const error = problem.error;
  return `${status}: ${typeof error === "object" && error ? error.message : [].concat(error).join("; ")}`;
}

function chatWidget(model) {
  const history = [];
  const log = el("div", { class: "chat-log", "aria-live": "polite" });
  const system = el("input", { type: "text", name: "system", placeholder: "System prompt (optional)" });
  const text = el("textarea", { name: "message", placeholder: "Say something…" });
  const maxTokens = el("input", { type: "number", name: "max_tokens", min: 1, value: 128 });
  const temperature = el("input", { type: "number", name: "temperature", min: 0, max: 2, step: 0.1, value: 0 });
  const send = el("button", { type: "submit" }, "Send");
  const stop = el("button", { type: "button", class: "secondary", name: "stop", disabled: true }, "Stop");
  const clear = el("button", { type: "button", class: "secondary", name: "clear" }, "Clear");
  let controller = null;
  const bubble = (role, content) => {
    const node = el("div", { class: `message ${role}`, "data-role": role }, el("span", { class: "who" }, role), el("span", { class: "content" }, content));
    log.append(node);
    return node.querySelector(".content");
  };
  stop.addEventListener("click", () => controller && controller.abort());
  clear.addEventListener("click", () => { history.length = 0; log.replaceChildren(); });
  const form = el("form", { class: "chat" }, system, log, el("label", { class: "field" }, "Message"), text,
    el("details", { class: "parameters" }, el("summary", {}, "Parameters"),
      el("div", { class: "param" }, el("label", {}, "max_tokens"), maxTokens),
      el("div", { class: "param" }, el("label", {}, "temperature"), temperature)),
    el("div", { class: "buttons" }, send, stop, clear));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!text.value.trim()) return;
    history.push({ role: "user", content: text.value });
    bubble("user", text.value);
    text.value = "";
    const answer = bubble("assistant", "");
    answer.parentElement.classList.add("streaming");
    const messages = [...(system.value ? [{ role: "system", content: system.value }] : []), ...history];
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    try {
      const response = await fetch(`/models/${model.model_id}/v1/chat/completions`, {
        method: "POST", signal: controller.signal, headers: { "Content-Type": "application/json", ...authHeaders() },
        body: JSON.stringify({ messages, stream: true, max_tokens: Number(maxTokens.value), temperature: Number(temperature.value) }),
      });
      if (!response.ok) throw new Error(errorText(response.status, await response.json().catch(() => ({ error: response.statusText }))));
      for await (const data of serverSentEvents(response)) {
        if (data === "[DONE]") break;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(errorText(chunk.error.code || "error", chunk));
        for (const choice of chunk.choices) {
          if (choice.delta.content) answer.textContent += choice.delta.content;
          if (choice.finish_reason) answer.parentElement.dataset.finish = choice.finish_reason;
        }
      }
    } catch (error) {
      if (error.name === "AbortError") answer.parentElement.dataset.finish = "stopped";
      else log.append(el("div", { class: "error", role: "alert" }, error.message));
    } finally {
      answer.parentElement.classList.remove("streaming");
      history.push({ role: "assistant", content: answer.textContent });
      controller = null;
      send.disabled = false;
      stop.disabled = true;
    }
  });
  return form;
}

function widget(model, catalog) {
  const body = el("div");
  const chats = Boolean(model.generation && model.generation.chat);
  // The chat widget speaks for the legacy conversational payload too.
  const tasks = chats ? [CHAT, ...model.tasks.filter((task) => task !== "conversational")] : model.tasks;
  const first = chats ? CHAT : model.task;
  const taskPicker = tasks.length > 1
    ? el("select", { name: "task", "aria-label": "task" }, tasks.map((t) => el("option", { value: t, selected: t === first }, t)))
    : null;
  const card = el("section", { class: "widget", "data-model": model.model_id, "data-task": model.task },
    el("h2", {}, model.model_id),
    el("div", { class: "meta" }, el("span", { class: "badge" }, model.library), `${model.device || "loading"} · ${model.state}`),
    taskPicker, body);
  const build = (task) => {
    card.dataset.task = task;
    if (task === CHAT) {
      body.replaceChildren(chatWidget(model));
      return;
    }
    const meta = catalog.tasks[task];
    const input = inputFor(task, meta);
    const parameters = parameterPanel(parameterSpecs(meta.request_schema, task));
    const output = el("div", { class: "output", "aria-live": "polite" });
    const button = el("button", { type: "submit" }, "Compute");
    const examples = task === model.task && model.examples.length
      ? el("div", { class: "examples" }, "Examples: ", model.examples.map((example, i) =>
        el("button", { type: "button", class: "secondary", onclick: () => input.prefill(example) }, example.example_title || `#${i + 1}`)))
      : null;
    const form = el("form", {}, input.fields, examples, parameters.panel, button, output);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      output.replaceChildren(el("p", { class: "muted" }, "Computing…"));
      try {
        const request = input.read();
        const response = await send(`/models/${model.model_id}/pipeline/${task}`, () => request, parameters.read, meta.progress ? "text/event-stream" : undefined);
        if (!response.ok) {
          const problem = await response.json().catch(() => ({ error: response.statusText }));
          output.replaceChildren(el("div", { class: "error", role: "alert" }, `${response.status}: ${[].concat(problem.error).join("; ")}`));
          return;
        }
        const where = response.headers.get("x-compute-type");
        if ((response.headers.get("content-type") || "").startsWith("text/event-stream")) {
          const { shown, seconds, steps } = await followProgress(response, output, task, request);
          output.replaceChildren(shown, el("div", { class: "time" }, `Made in ${seconds.toFixed(1)} s on ${where} (${steps} steps)`));
          return;
        }
        const time = response.headers.get("x-compute-time");
        const shown = meta.response_media === "any" ? await freeAnswer(response) : await render(task, response, request);
        output.replaceChildren(shown,
          el("div", { class: "time" }, `Computed in ${time} s on ${where}`));
      } catch (error) {
        output.replaceChildren(el("div", { class: "error", role: "alert" }, error.message));
      } finally {
        button.disabled = false;
      }
    });
    if (task === model.task && model.examples.length) input.prefill(model.examples[0]);
    body.replaceChildren(form);
  };
  if (taskPicker) taskPicker.addEventListener("change", () => build(taskPicker.value));
  build(first);
  return card;
}

async function main() {
  const container = document.getElementById("models");
  const response = await fetch("/widgets", { headers: authHeaders() });
  if (response.status === 401) {
    const box = document.getElementById("api-key");
    box.hidden = false;
    container.replaceChildren(el("p", { class: "error" }, "This server needs an API key."));
    document.getElementById("api-key-save").onclick = () => {
      state.apiKey = document.getElementById("api-key-input").value;
      sessionStorage.setItem("widgetd-api-key", state.apiKey);
      main();
    };
    return;
  }
  const catalog = await response.json();
  container.replaceChildren(...catalog.models.map((model) => widget(model, catalog)));
  if (!catalog.models.length) container.append(el("p", { class: "muted" }, "This server serves no model yet."));
  if (catalog.allowed.length) container.prepend(modelOpener(catalog.allowed));
}

// ---- models on demand: open any allowed Hub model, following its load -------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function modelOpener(allowed) {
  const name = el("input", { type: "text", name: "model_id", placeholder: allowed[0].replace("*", "model-name") });
  const status = el("div", { class: "output", "aria-live": "polite" });
  const button = el("button", { type: "submit" }, "Open");
  const form = el("form", {}, el("p", { class: "muted" }, `Any Hub model matching ${allowed.join(", ")} loads on its first request.`),
    name, button, status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const modelId = name.value.trim();
    button.disabled = true;
    try {
      // Any request starts the load; an empty body is refused (400) only once the model is ready.
      for (;;) {
        const response = await fetch(`/models/${modelId}`, { method: "POST", headers: authHeaders(), body: "" });
        if (response.status !== 503) {
          if (response.status === 404 || response.status === 401) {
            const problem = await response.json().catch(() => ({ error: response.statusText }));
            status.replaceChildren(el("div", { class: "error", role: "alert" }, `${response.status}: ${problem.error}`));
            return;
          }
          await main();
          document.querySelector(`section[data-model="${modelId}"]`)?.scrollIntoView();
          return;
        }
        const problem = await response.json().catch(() => ({}));
        if (!("estimated_time" in problem)) {
          status.replaceChildren(el("div", { class: "error", role: "alert" }, `503: ${problem.error}`));
          return;
        }
        status.replaceChildren(el("p", { class: "loading" }, `Loading ${modelId}… about ${Math.ceil(problem.estimated_time)} s left`));
        await sleep(Math.min(2000, Math.max(250, problem.estimated_time * 500)));
      }
    } finally {
      button.disabled = false;
    }
  });
  return el("section", { class: "widget opener" }, el("h2", {}, "Open a model"), form);
}

main();
