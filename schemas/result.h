// Result<T>: a value or an Error. Used at every component boundary instead of exceptions.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace civishare {

// What kind of failure happened; callers branch on this, people read `message`.
enum class Errc {
  invalid_config,  // the configuration is wrong; the message names the key and the fix
  invalid_input,   // malformed data from outside (JSON, HTTP request, log row)
  unauthorized,    // bad or missing signature
  database,        // the CiviCRM database refused or is unreachable
  storage,         // the local RocksDB store failed
  network,         // a peer could not be reached
  peer_rejected,   // a peer answered with a non-2xx status
  not_found,       // a referenced thing does not exist
  position_lost,   // the capture cursor points at history the server no longer has (purged)
  internal,        // a bug: an invariant did not hold
};

const char* to_string(Errc code);

struct Error {
  Errc code = Errc::internal;
  std::string message;

  std::string describe() const { return std::string(to_string(code)) + ": " + message; }
};

inline Error make_error(Errc code, std::string message) {
  return Error{code, std::move(message)};
}

// Holds either a T or an Error. `ok()` says which; accessing the wrong side is a bug.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
struct Ok {};
using Status = Result<Ok>;
inline Status ok_status() {
  return Ok{};
}

}  // namespace civishare
