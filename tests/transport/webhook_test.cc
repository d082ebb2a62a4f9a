#include "transport/webhook.h"

#include <gtest/gtest.h>

namespace civishare::webhook {
namespace {

constexpr const char* kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr const char* kId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr const char* kBody = R"({"test": 2432232314})";
constexpr const char* kExpected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

TEST(Webhook, SpecificationVector) {
  auto key = key_from_secret(kSecret);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(sign(*key, kId, 1614265330, kBody), kExpected);
}

TEST(Webhook, VerifiesTheSpecificationVector) {
  auto key = *key_from_secret(kSecret);
  EXPECT_TRUE(verify(key, {kId, "1614265330", kExpected, kBody}, 1614265330).ok());
  // Key rotation: one valid v1 entry among several suffices.
  std::string several = std::string("v1,bm90IGl0 ") + kExpected;
  EXPECT_TRUE(verify(key, {kId, "1614265330", several, kBody}, 1614265330).ok());
}

TEST(Webhook, RefusesTamperingWrongKeysAndStaleTimestamps) {
  auto key = *key_from_secret(kSecret);
  auto body = verify(key, {kId, "1614265330", kExpected, R"({"test": 2432232315})"}, 1614265330);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.error().code, Errc::unauthorized);
  auto other = *key_from_secret(new_secret());
  EXPECT_FALSE(verify(other, {kId, "1614265330", kExpected, kBody}, 1614265330).ok());
  auto stale = verify(key, {kId, "1614265330", kExpected, kBody}, 1614265330 + 301);
  ASSERT_FALSE(stale.ok());
  EXPECT_NE(stale.error().message.find("tolerance"), std::string::npos);
  EXPECT_FALSE(verify(key, {kId, "1614265330", kExpected, kBody}, 1614265330 - 301).ok());
  auto missing = verify(key, {"", "1614265330", kExpected, kBody}, 1614265330);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::invalid_input);
  EXPECT_FALSE(verify(key, {kId, "16142x", kExpected, kBody}, 1614265330).ok());
}

TEST(Webhook, SecretsAreValidatedAndFresh) {
  EXPECT_FALSE(key_from_secret("whsec_short").ok());
  EXPECT_FALSE(key_from_secret("not base64 at all!").ok());
  std::string a = new_secret(), b = new_secret();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("whsec_", 0), 0u);
  EXPECT_EQ(key_from_secret(a)->size(), 32u);
}

}  // namespace
}  // namespace civishare::webhook
