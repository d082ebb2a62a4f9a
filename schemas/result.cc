#include "schemas/result.h"

namespace civishare {

const char* to_string(Errc code) {
  switch (code) {
    case Errc::invalid_config:
      return "invalid config";
    case Errc::invalid_input:
      return "invalid input";
    case Errc::unauthorized:
      return "unauthorized";
    case Errc::database:
      return "database error";
    case Errc::storage:
      return "storage error";
    case Errc::network:
      return "network error";
    case Errc::peer_rejected:
      return "peer rejected";
    case Errc::not_found:
      return "not found";
    case Errc::position_lost:
      return "position lost";
    case Errc::internal:
      return "internal error";
  }
  return "error";
}

}  // namespace civishare
