package org.egressproxy.http;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class AuthorityTest {
  @ParameterizedTest(name = "{0} -> {1}")
  @CsvSource(delimiter = '|', nullValues = "NULL", value = {
      "www.example.com:443 | www.example.com:443",
      "www.example.com | www.example.com:80",
      "[2001:db8::1]:8443 | [2001:db8::1]:8443",
      "xn--bcher-kva.example:443 | xn--bcher-kva.example:443",
      // userinfo, either way round
      "allowed.example@evil.example:443 | NULL",
      "evil.example@allowed.example:443 | NULL",
      // not printable ASCII: on the wire an IDN is punycode
      "bücher.example:443 | NULL",
      "ｂｌｏｃｋｅｄ.example:443 | NULL",
      "'a b.example:443' | NULL",
      // ports
      "a.example:0 | NULL",
      "a.example:65536 | NULL",
      "a.example: | NULL",
      "a.example:+443 | NULL",
      "2001:db8::1 | NULL",
  })
  void parses(String text, String expected) {
    Authority a = Authority.parse(text, 80);
    assertThat(a == null ? null : a.host() + ":" + a.port()).isEqualTo(expected);
  }

  @org.junit.jupiter.api.Test
  void controlCharactersAreNeverPartOfAHost() {
    for (String c : new String[] {"\0", "\r", "\n", "\t", "\u007f", "\u0085"}) {
      assertThat(Authority.parse("www.example.com" + c + ".evil.example:443", -1)).isNull();
    }
  }
}
