// A Node application calling MPWT's vehicle registry through MoH's security server,
// as any ministry application would: plain @grpc/grpc-js, the service's own .proto,
// and the two Spean headers. Run by tests/e2e/test_node_client.py:
//
//   node client.js CONSUMER_ADDRESS PROTO_ROOT CLIENT SERVICE PLATE OWNER
//
// Prints one JSON object: the unary answer, the streamed answers and a refusal,
// each with its status code and the spean-exchange-id trailer.
"use strict";

const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const [address, protoRoot, client, service, plate, owner] = process.argv.slice(2);

const definition = protoLoader.loadSync("spean/demo/vehicles/v1/vehicles.proto", {
  includeDirs: [protoRoot],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
});
const VehicleRegistry = grpc.loadPackageDefinition(definition).vehicles.v1.VehicleRegistry;
const stub = new VehicleRegistry(address, grpc.credentials.createInsecure());

function headers(serviceId) {
  const metadata = new grpc.Metadata();
  metadata.set("spean-client", client);
  metadata.set("spean-service", serviceId);
  metadata.set("spean-purpose", "node interoperability test");
  return metadata;
}

function deadline() {
  return new Date(Date.now() + 10000);
}

function exchangeId(metadata) {
  const values = metadata ? metadata.get("spean-exchange-id") : [];
  return values.length ? String(values[0]) : "";
}

function getVehicle(serviceId, request) {
  return new Promise((resolve) => {
    let answer = null;
    const call = stub.GetVehicle(request, headers(serviceId), { deadline: deadline() }, (err, vehicle) => {
      answer = err ? null : vehicle;
    });
    call.on("status", (status) => {
      resolve({ code: status.code, details: status.details, exchangeId: exchangeId(status.metadata), vehicle: answer });
    });
  });
}

function listVehicles(request) {
  return new Promise((resolve) => {
    const plates = [];
    const call = stub.ListVehiclesByOwner(request, headers(service), { deadline: deadline() });
    call.on("data", (vehicle) => plates.push(vehicle.plate));
    call.on("error", () => {});
    call.on("status", (status) => {
      resolve({ code: status.code, details: status.details, exchangeId: exchangeId(status.metadata), plates });
    });
  });
}

async function main() {
  const unary = await getVehicle(service, { plate });
  const stream = await listVehicles({ owner_id: owner });
  const refused = await getVehicle(service.replace(/\/[^/]+$/, "/nosuchsubsystem"), { plate });
  stub.close();
  process.stdout.write(JSON.stringify({ unary, stream, refused }) + "\n");
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
