// Run a TF.js graph model on float32 inputs with TF.js itself (the reference for the torch ports).
//
//   npm install @tensorflow/tfjs-core@4.22.0 @tensorflow/tfjs-converter@4.22.0 \
//       @tensorflow/tfjs-backend-cpu@4.22.0
//   NODE_PATH=./node_modules node bench/tfjs_reference.js MODEL.json INPUT.f32 N,H,W,C OUT.json NODE...
//
// INPUT.f32 holds the raw little-endian float32 NHWC batch; OUT.json gets {node: {shape, data}}.
// Pure-JS CPU backend: no TensorFlow, no native code.
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const converter = require('@tensorflow/tfjs-converter');

async function main() {
  const [modelPath, inputPath, shapeText, outPath, ...nodes] = process.argv.slice(2);
  await tf.setBackend('cpu');
  const model = JSON.parse(fs.readFileSync(modelPath));
  const specs = [];
  const shards = [];
  for (const group of model.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) shards.push(fs.readFileSync(path.join(path.dirname(modelPath), p)));
  }
  const all = Buffer.concat(shards);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const graph = await converter.loadGraphModel(
    tf.io.fromMemory({ modelTopology: model.modelTopology, weightSpecs: specs, weightData }));
  const raw = fs.readFileSync(inputPath);
  const x = tf.tensor(new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4),
    shapeText.split(',').map(Number));
  let outs = graph.execute(x, nodes);
  outs = Array.isArray(outs) ? outs : [outs];
  const result = {};
  nodes.forEach((n, i) => { result[n] = { shape: outs[i].shape, data: Array.from(outs[i].dataSync()) }; });
  fs.writeFileSync(outPath, JSON.stringify(result));
}

main();
