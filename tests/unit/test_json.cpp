// agent/json: the one JSON writer/reader the drill log and dump references share.
#include <catch2/catch.hpp>

#include "agent/json.h"

using namespace rw;

TEST_CASE("json: strings and numbers round-trip exactly", "[unit][json]") {
  std::string o = "{";
  json::PutKey(o, "s", true);
  json::PutString(o, "quote \" back \\ nl \n tab \t ctl \x01 del \x7f ünï");
  json::PutKey(o, "big");
  o += "9223372036854775807";
  json::PutKey(o, "t");
  json::PutNumber(o, 1764690000.123456);
  json::PutKey(o, "nan");
  json::PutNumber(o, 0.0 / 0.0);
  o += "}";
  json::Value v;
  std::string why;
  REQUIRE(json::Parse(o, &v, &why));
  CHECK(v.Str("s") == "quote \" back \\ nl \n tab \t ctl \x01 del \x7f ünï");
  CHECK(v.Get("big")->s == "9223372036854775807");  // kept as text: no double rounding
  CHECK(v.Num("t") == 1764690000.123456);           // exact: microseconds survive
  CHECK(o.find("\"t\":1764690000.123456,") != std::string::npos);
  CHECK(v.Get("nan")->t == json::Value::T::kNull);
  CHECK(v.Str("absent").empty());
  CHECK(v.Num("absent") == 0);
}

TEST_CASE("json: escapes, surrogate pairs and nesting", "[unit][json]") {
  json::Value v;
  REQUIRE(json::Parse(R"( [ "\u00e9\ud83d\ude00\/", true, false, null, -0.5e+3, {} ] )", &v));
  REQUIRE(v.a.size() == 6);
  CHECK(v.a[0].s == "\xc3\xa9\xf0\x9f\x98\x80/");
  CHECK(v.a[1].b);
  CHECK(v.a[4].AsDouble() == Approx(-500));
  CHECK(v.a[5].t == json::Value::T::kObj);
  std::string deep(40, '[');
  deep += std::string(40, ']');
  std::string why;
  CHECK_FALSE(json::Parse(deep, &v, &why));
  CHECK(why.find("nested too deeply") != std::string::npos);
}

TEST_CASE("json: invalid text is refused, naming what and where", "[unit][json]") {
  json::Value v;
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "inf", "nan", "\"abc",
                          "\"a\nb\"", "\"\\x\"", "\"\\ud83d\\u0041\"", "{} x", "tru"}) {
    std::string why;
    INFO(bad);
    CHECK_FALSE(json::Parse(bad, &v, &why));
    CHECK(why.find(" at byte ") != std::string::npos);
  }
  std::string why;
  CHECK_FALSE(json::Parse("{\"a\":1 \"b\":2}", &v, &why));
  CHECK(why == "expected ',' or '}' at byte 7");
}

TEST_CASE("json: a text cut short is told apart from a malformed one", "[unit][json]") {
  json::Value v;
  std::string why;
  bool truncated = false;
  CHECK_FALSE(json::Parse("{\"Files\": [{\"Path\": \"base/1\"", &v, &why, &truncated));
  CHECK(truncated);
  CHECK_FALSE(json::Parse("{\"Files\": x}", &v, &why, &truncated));
  CHECK_FALSE(truncated);
  CHECK(json::Parse("{}", &v, &why, &truncated));
  CHECK_FALSE(truncated);
}
