// Micro benchmarks for the pure model code on the hot path: canonical JSON and signatures.
// Each prints next to a reference in the same run: plain boost::json::serialize of the same value
// (what signing costs on top of serialising) and a bare sha512 of the same bytes.
#include <benchmark/benchmark.h>

#include "schemas/canonical_json.h"
#include "schemas/change.h"
#include "schemas/crypto.h"

namespace {
using namespace civishare;

Change sample() {
  Change c;
  c.id = "civi1-0a1b";
  c.type = "civishare.change.contact.base";
  c.timestamp = "2026-11-28T09:59:58Z";
  c.entity = "Contact";
  c.entity_reference = "civi1-312";
  c.operation = Operation::update;
  for (const char* n :
       {"first_name", "last_name", "middle_name", "external_identifier", "job_title"}) {
    c.attribute_changes.push_back({n, boost::json::value("old"), boost::json::value("new value")});
  }
  return c;
}

void BM_ReferenceSerialize(benchmark::State& state) {
  auto v = to_json(sample());
  for (auto _ : state) benchmark::DoNotOptimize(boost::json::serialize(v));
}
BENCHMARK(BM_ReferenceSerialize);

void BM_CanonicalJson(benchmark::State& state) {
  auto v = to_json(sample());
  for (auto _ : state) benchmark::DoNotOptimize(canonical_json(v));
}
BENCHMARK(BM_CanonicalJson);

void BM_ReferenceSha512(benchmark::State& state) {
  std::string text = canonical_json(to_json(sample()));
  for (auto _ : state) benchmark::DoNotOptimize(sha512(text));
}
BENCHMARK(BM_ReferenceSha512);

void BM_ChangeSignature(benchmark::State& state) {
  Change c = sample();
  for (auto _ : state) benchmark::DoNotOptimize(change_signature(c, "civi1"));
}
BENCHMARK(BM_ChangeSignature);

}  // namespace

BENCHMARK_MAIN();
