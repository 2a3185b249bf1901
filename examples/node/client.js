#!/usr/bin/env node
// A Node.js client of llama.v1.GatewayService. It loads ../../protos directly with
// @grpc/proto-loader: no generated code, the same .proto files every client uses.
//
//   node client.js [--addr localhost:50051] [--api-key KEY] chat "Hello"      (unary ChatCompletion)
//   node client.js [--addr localhost:50051] stream "Tell me a story"          (StreamChatCompletion)
//   node client.js [--addr localhost:50051] complete "Once upon a time"       (unary TextCompletion)
//
// Prints the answer's text; with --json, the whole response (or one JSON line per stream message).
"use strict";

const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTO_ROOT = path.resolve(__dirname, "..", "..", "protos");

function parseArgs(argv) {
  const opts = { addr: process.env.LLAMA_GRPC_ADDR || "localhost:50051", apiKey: process.env.LLAMA_GRPC_API_KEY,
    json: false, maxGenLen: undefined, temperature: undefined, seed: undefined };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--addr") opts.addr = argv[++i];
    else if (a === "--api-key") opts.apiKey = argv[++i];
    else if (a === "--json") opts.json = true;
    else if (a === "--max-gen-len") opts.maxGenLen = Number(argv[++i]);
    else if (a === "--temperature") opts.temperature = Number(argv[++i]);
    else if (a === "--seed") opts.seed = argv[++i];
    else rest.push(a);
  }
  if (rest.length !== 2 || !["chat", "stream", "complete"].includes(rest[0])) {
    console.error('usage: node client.js [--addr H:P] [--api-key K] [--json] chat|stream|complete "text"');
    process.exit(2);
  }
  return { ...opts, command: rest[0], text: rest[1] };
}

function loadService() {
  const def = protoLoader.loadSync("llama/v1/gateway.proto", {
    includeDirs: [PROTO_ROOT], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  });
  return grpc.loadPackageDefinition(def).llama.v1.GatewayService;
}

function sampling(opts) {
  const s = {};
  if (opts.maxGenLen !== undefined) s.max_gen_len = opts.maxGenLen;
  if (opts.temperature !== undefined) s.temperature = opts.temperature;
  if (opts.seed !== undefined) s.seed = opts.seed;
  return s;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const Service = loadService();
  const client = new Service(opts.addr, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (opts.apiKey) metadata.set("authorization", `Bearer ${opts.apiKey}`);
  const dialogs = [{ messages: [{ role: "ROLE_USER", content: opts.text }] }];
  const fail = (err) => {
    console.error(`error: ${grpc.status[err.code]}: ${err.details}`);
    process.exit(1);
  };

  if (opts.command === "stream") {
    const call = client.StreamChatCompletion({ dialogs, ...sampling(opts) }, metadata);
    call.on("data", (msg) => {
      if (opts.json) console.log(JSON.stringify(msg));
      else process.stdout.write(msg.text);
    });
    call.on("error", fail);
    call.on("end", () => {
      if (!opts.json) process.stdout.write("\n");
      client.close();
    });
    return;
  }
  const done = (err, resp) => {
    if (err) fail(err);
    const p = resp.predictions[0];
    console.log(opts.json ? JSON.stringify(resp) : (opts.command === "chat" ? p.generation.content : p.generation));
    client.close();
  };
  if (opts.command === "chat") client.ChatCompletion({ dialogs, ...sampling(opts) }, metadata, done);
  else client.TextCompletion({ prompts: [opts.text], ...sampling(opts) }, metadata, done);
}

main();
