// @huggingface/inference (its own strict output validation included) against a widgetd server.
// Usage: node js_client.mjs BASE_URL AUDIO_FILE IMAGE_FILE; prints one JSON object of results.
import { readFile } from "node:fs/promises";
import { InferenceClient, InferenceClientProviderApiError } from "@huggingface/inference";

const [base, audioFile, imageFile] = process.argv.slice(2);
const client = new InferenceClient();
const at = (model) => client.endpoint(`${base}/models/${model}`);
const context = "My name is Sarah and I live in London.";

const results = {
  tokens: await at("tiny-ner").tokenClassification({
    inputs: "My name is Sarah and I live in London",
    parameters: { aggregation_strategy: "simple", ignore_labels: [] },
  }),
  answer: await at("tiny-qa").questionAnswering({ inputs: { question: "Where does Sarah live?", context } }),
  similarity: await at("tiny-st").sentenceSimilarity({ inputs: { source_sentence: "the cat", sentences: ["the cat", "a dog"] } }),
  transcript: await at("tiny-asr").automaticSpeechRecognition({ inputs: new Blob([await readFile(audioFile)]) }),
  sounds: await at("tiny-keywords").audioClassification({ inputs: new Blob([await readFile(audioFile)]) }),
  labels: await at("tiny-vit").imageClassification({ inputs: new Blob([await readFile(imageFile)]) }),
  objects: await at("tiny-detector").objectDetection({ inputs: new Blob([await readFile(imageFile)]), parameters: { threshold: 0 } }),
  segments: await at("tiny-segmenter").imageSegmentation({ inputs: new Blob([await readFile(imageFile)]), parameters: { subtask: "semantic" } }),
  table: await at("tiny-tapas").tableQuestionAnswering({
    inputs: { question: "how many city ?", table: { city: ["paris", "london", "berlin"], population: ["2", "9", "4"] } },
  }),
  caption: await at("tiny-captioner").imageToText({ data: new Blob([await readFile(imageFile)]) }),
  visualAnswer: await at("tiny-vilt").visualQuestionAnswering({ inputs: { image: new Blob([await readFile(imageFile)]), question: "what colour is it ?" } }),
  documentAnswer: await at("tiny-layoutlm").documentQuestionAnswering({
    inputs: { image: new Blob([await readFile(imageFile)]), question: "what is the total ?" },
    parameters: { word_boxes: [["total", [10, 50, 100, 70]], ["99", [110, 50, 160, 70]]] },
  }),
  upscaled: await (await at("tiny-upscaler").imageToImage({ inputs: new Blob([await readFile(imageFile)]) })).arrayBuffer().then((b) => b.byteLength),
  species: await at("classifier-numbered").tabularClassification({ inputs: { data: { Length: ["23.2", "40.1"], Height: ["11.5", "7.0"], Width: ["4.02", "4.2"] } } }),
  weights: await at("regressor-skops").tabularRegression({ inputs: { data: { Species: ["Bream"], Length: ["23.2"], Height: ["11.5"], Width: ["4.02"] } } }),
  painted: await (await at("tiny-sd").textToImage({ inputs: "a red cat", parameters: { width: 64, height: 128, num_inference_steps: 2, seed: 4 } }, { outputType: "blob" })).arrayBuffer().then((b) => b.byteLength),
  zeroShot: await at("tiny-clip").zeroShotImageClassification({
    inputs: { image: new Blob([await readFile(imageFile)]) },
    parameters: { candidate_labels: ["a cat", "a red square"] },
  }),
};
const messages = [{ role: "user", content: "Where does Sarah live?" }];
results.chat = await at("tiny-chat").chatCompletion({ model: "tiny-chat", messages, max_tokens: 8, temperature: 0 });
results.chatStream = [];
for await (const chunk of at("tiny-chat").chatCompletionStream({ model: "tiny-chat", messages, max_tokens: 8, temperature: 0 })) {
  results.chatStream.push(chunk);
}
try {
  await at("tiny-mlm").fillMask({ inputs: "no mask here" });
  results.error = null;
} catch (error) {
  results.error = { name: error.constructor.name, message: error.message, isProviderError: error instanceof InferenceClientProviderApiError };
}
console.log(JSON.stringify(results));
